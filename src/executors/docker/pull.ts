import type Dockerode from 'dockerode';
import { coerceError, ImageUnavailableError, InfrastructureError, statusCodeOf } from '../../jobs/errors.js';
import type { PullProgress } from '../executor.js';
import type { RegistryCredential } from '../registry-auth.js';
import { cleanEngineMessage } from './errors.js';
import { type PullMessage, PullTracker } from './pull-progress.js';

/** A whole pull may take this long by default: large ML images over a slow link take many minutes. */
export const DEFAULT_PULL_TIMEOUT_MS = 30 * 60_000;
/**
 * A pull may go this long without a byte of progress by default (kubelet's old image pull
 * progress deadline): a registry that hangs is given up on and the attempt retried.
 */
export const DEFAULT_PULL_STALL_MS = 60_000;

export interface PullSettings {
  timeoutMs: number;
  stallMs: number;
}

export interface PullOutcome {
  bytes: number;
  layers: number;
  durationMs: number;
  /** The manifest digest the engine pulled, when it said. */
  digest: string | null;
}

/**
 * The engine's words for an image that cannot exist or cannot be had: no retry helps. Anything
 * else (registry unreachable, engine trouble, a reset connection) is worth a retry. A "permission
 * denied" is the engine's own disk, not the registry's "denied: requested access…".
 */
const IMAGE_PROBLEM =
  /manifest unknown|not found|unauthorized|(?<!permission )denied|authentication required|no basic auth credentials|invalid reference format|repository name must|does not exist|name unknown|invalid tag format|no matching manifest/i;
/**
 * A registry's rate limit (Docker Hub's "toomanyrequests", passed on by the engine as 429): the
 * image is there, and a retry after the backoff gets it.
 */
const RATE_LIMITED = /toomanyrequests|too many requests/i;
const TOO_MANY_REQUESTS = 429;

/** The pull failure as an ImageUnavailableError (never retried) or an InfrastructureError. */
export function pullFailure(image: string, message: string, statusCode?: number): Error {
  const said = cleanEngineMessage(message);
  const clientError = statusCode !== undefined && statusCode >= 400 && statusCode < 500;
  const rateLimited = statusCode === TOO_MANY_REQUESTS || RATE_LIMITED.test(said);
  if (!rateLimited && (clientError || IMAGE_PROBLEM.test(said))) {
    return new ImageUnavailableError(
      `cannot pull ${image}: ${said}. Check the name and tag, and that the worker's registry credentials (STEVEDORE_REGISTRY_AUTH) cover this registry`,
    );
  }
  return new InfrastructureError(
    'loading-image',
    `pull of ${image} failed: ${said}; the job is retried with backoff`,
  );
}

/**
 * Pulls `image` through the engine with the registry credential (sent as X-Registry-Auth,
 * never put anywhere else), reporting progress, within the whole-pull and the no-progress
 * timeouts. `signal` aborts the pull itself.
 */
export async function pullImage(
  docker: Dockerode,
  image: string,
  options: {
    credential?: RegistryCredential;
    settings: PullSettings;
    onProgress: (progress: PullProgress) => void;
    signal?: AbortSignal;
  },
): Promise<PullOutcome> {
  const { settings } = options;
  const started = Date.now();
  const tracker = new PullTracker(image);
  const abort = new AbortController();
  let timedOut: 'whole' | 'stall' | null = null;
  const giveUp = (why: 'whole' | 'stall'): void => {
    timedOut ??= why;
    abort.abort(why);
  };
  const whole = setTimeout(() => giveUp('whole'), settings.timeoutMs);
  let stall = setTimeout(() => giveUp('stall'), settings.stallMs);
  const onCaller = (): void => abort.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onCaller, { once: true });
  try {
    const response: NodeJS.ReadableStream = await docker.createImage(options.credential, {
      fromImage: image,
      abortSignal: abort.signal,
    });
    let rest = '';
    for await (const chunk of response) {
      const lines = (rest + chunk.toString()).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        if (line.trim() === '' || !tracker.feed(parseLine(line))) continue;
        clearTimeout(stall);
        stall = setTimeout(() => giveUp('stall'), settings.stallMs);
        options.onProgress(tracker.progress);
      }
    }
    if (rest.trim() !== '') tracker.feed(parseLine(rest));
  } catch (error) {
    if (timedOut) throw timeoutError(image, timedOut, settings, tracker.progress, error);
    if (options.signal?.aborted) throw error;
    const message = coerceError(error).message;
    throw Object.assign(pullFailure(image, message, statusCodeOf(error)), { cause: error });
  } finally {
    clearTimeout(whole);
    clearTimeout(stall);
    options.signal?.removeEventListener('abort', onCaller);
  }
  if (tracker.error !== null) throw pullFailure(image, tracker.error);
  const { bytes, layers } = tracker.progress;
  return { bytes, layers, durationMs: Date.now() - started, digest: tracker.digest };
}

function parseLine(line: string): PullMessage {
  try {
    return JSON.parse(line) as PullMessage;
  } catch {
    return { status: line };
  }
}

function timeoutError(
  image: string,
  why: 'whole' | 'stall',
  settings: PullSettings,
  progress: PullProgress,
  cause: unknown,
): InfrastructureError {
  const got = `${progress.bytes} of ${progress.totalBytes || '?'} bytes, ${progress.layersDone}/${progress.layers} layers`;
  const message =
    why === 'stall'
      ? `pull of ${image} made no progress for ${settings.stallMs} ms (STEVEDORE_PULL_STALL_MS) after ${got}: the registry does not answer; the job is retried with backoff`
      : `pull of ${image} did not finish within ${settings.timeoutMs} ms (STEVEDORE_PULL_TIMEOUT_MS) after ${got}; the job is retried with backoff, or raise the timeout`;
  return new InfrastructureError('loading-image', message, { cause });
}
