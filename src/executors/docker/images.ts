import type Dockerode from 'dockerode';
import type { Logger } from 'pino';
// Only the fallbacks for a runtime opened without pull settings; a worker passes its own.
import { DEFAULT_PULL_STALL_MS, DEFAULT_PULL_TIMEOUT_MS } from '../../config/defaults.js';
import { ImageUnavailableError } from '../../jobs/errors.js';
import {
  canonicalRef,
  type ImageRef,
  nameOf,
  parseImageRef,
  requireImageRef,
  sameRepository,
} from '../../jobs/image-ref.js';
import type { ImageIdentity, ImageRequest, ImageSpec, LoadedImage, PullProgress } from '../executor.js';
import { RegistryCredentials } from '../registry-auth.js';
import { inspectImage, loadImageTarball } from './image.js';
import { HOLDER_REPOSITORY } from './netns/holder-image.js';
import { type PullOutcome, type PullSettings, pullImage } from './pull.js';

/**
 * How long an image seen present is taken as present without asking: a busy worker asks the
 * engine once per image this often instead of once per job. Containers are created from the
 * image's id, so an image removed meanwhile makes create fail with "No such image", and the
 * executor loads it again.
 */
const PRESENT_TTL_MS = 30_000;

export interface DockerImagesOptions {
  credentials?: RegistryCredentials;
  pull?: Partial<PullSettings>;
}

/** What a load found, before it is tied to the request it answers. */
type Found = Omit<LoadedImage, 'request'>;

/** A pull under way, which every job that needs the same image while it runs waits on. */
interface SharedPull {
  done: Promise<PullOutcome>;
  abort: AbortController;
  listeners: Set<(progress: PullProgress) => void>;
  latest: PullProgress | null;
  waiters: number;
}

/**
 * Makes images available on one engine by each job's pull policy: from what is present, a
 * tarball, or a registry with the worker's credentials. One pull per image at a time: jobs that
 * need an image being pulled wait on that pull and see its outcome; a failed pull is forgotten
 * at once, so the next attempt pulls afresh.
 */
export class DockerImages {
  /** Canonical reference → its identity and until when it counts as present (ms since epoch). */
  private readonly present = new Map<string, { identity: ImageIdentity; until: number }>();
  private readonly pulls = new Map<string, SharedPull>();
  private readonly credentials: RegistryCredentials;
  readonly pullSettings: PullSettings;

  constructor(
    private readonly docker: Dockerode,
    options: DockerImagesOptions = {},
  ) {
    this.credentials = options.credentials ?? RegistryCredentials.none();
    this.pullSettings = {
      timeoutMs: options.pull?.timeoutMs ?? DEFAULT_PULL_TIMEOUT_MS,
      stallMs: options.pull?.stallMs ?? DEFAULT_PULL_STALL_MS,
    };
  }

  async ensure(request: ImageRequest, log: Logger): Promise<LoadedImage> {
    const { image, tarballPath, pullPolicy } = request;
    const found = await this.find(request, log);
    return { request: tarballPath ? { image, tarballPath, pullPolicy } : { image, pullPolicy }, ...found };
  }

  private async find(request: ImageRequest, log: Logger): Promise<Found> {
    const ref = requireImageRef(request.image);
    const key = canonicalRef(ref);
    // A job that loads or pulls its own image under the holders' name would put its program in
    // the namespace every later job without network joins. Any registry: Podman stores the
    // holders' image as localhost/stevedore/netns-holder.
    if (ref.repository === HOLDER_REPOSITORY) {
      throw new ImageUnavailableError(
        `image ${request.image} is in ${HOLDER_REPOSITORY}, the worker's own repository for network namespace holders: jobs may not run, load or pull images there`,
      );
    }
    // `always` pulls every time, but a digest names content that cannot change.
    if (request.pullPolicy !== 'always' || ref.digest !== null) {
      const identity = await this.known(request.image, key, ref);
      if (identity) return { ...identity, source: 'present', pull: null };
    }
    if (request.tarballPath) return this.fromTarball(request.image, request.tarballPath, key, ref);
    if (request.pullPolicy === 'never') {
      throw new ImageUnavailableError(
        `image ${request.image} is not present on this host and the job's imagePullPolicy is "never": pull it on the host first ("docker pull ${request.image}"), give the job an imageTarball, or let the worker pull it (imagePullPolicy "if-not-present")`,
      );
    }
    return this.pulled(request, key, ref, log);
  }

  /** Loads an image again as it was loaded before (the engine lost it since, e.g. removed meanwhile); its id now. */
  async reload(request: ImageSpec, log: Logger): Promise<string> {
    this.forget(request.image);
    return (await this.ensure(request, log)).imageId;
  }

  /** Forgets that an image was present (after the engine said it is not). */
  forget(image: string): void {
    const ref = parseImageRef(image);
    if (typeof ref !== 'string') this.present.delete(canonicalRef(ref));
  }

  /** The identity of an image the engine has, for a container it already runs (adoption). */
  async identityOf(imageId: string, reference: string): Promise<ImageIdentity | null> {
    const ref = parseImageRef(reference);
    const info = await inspectImage(this.docker, imageId).catch(() => null);
    if (!info) return null;
    return {
      imageId: info.Id,
      imageDigest: typeof ref === 'string' ? null : repoDigestOf(info, ref, reference),
    };
  }

  private async known(image: string, key: string, ref: ImageRef): Promise<ImageIdentity | null> {
    const cached = this.present.get(key);
    if (cached && cached.until > Date.now()) return cached.identity;
    this.present.delete(key);
    return this.inspect(image, key, ref);
  }

  private async inspect(
    image: string,
    key: string,
    ref: ImageRef,
    digest?: string | null,
  ): Promise<ImageIdentity | null> {
    const info = await inspectImage(this.docker, image);
    if (!info) return null;
    const identity = { imageId: info.Id, imageDigest: repoDigestOf(info, ref, image, digest) };
    this.present.set(key, { identity, until: Date.now() + PRESENT_TTL_MS });
    return identity;
  }

  private async fromTarball(image: string, tarballPath: string, key: string, ref: ImageRef): Promise<Found> {
    await loadImageTarball(this.docker, image, tarballPath);
    const identity = await this.inspect(image, key, ref);
    if (!identity)
      throw new ImageUnavailableError(`image ${image} is gone right after its tarball was loaded; try again`);
    // A loaded image came from no registry, whatever digests the engine remembers for its name.
    return { imageId: identity.imageId, imageDigest: null, source: 'tarball', pull: null };
  }

  private async pulled(request: ImageRequest, key: string, ref: ImageRef, log: Logger): Promise<Found> {
    const found = this.pulls.get(key);
    const shared = found !== undefined;
    const pull = found ?? this.startPull(request.image, key, log);
    const listener = request.onProgress;
    if (listener) {
      pull.listeners.add(listener);
      if (pull.latest) listener(pull.latest);
    }
    pull.waiters += 1;
    try {
      const outcome = await waitOrAbort(pull.done, request.signal);
      const identity = await this.inspect(request.image, key, ref, outcome.digest);
      if (!identity)
        throw new ImageUnavailableError(
          `image ${request.image} is gone right after it was pulled; try again`,
        );
      const { durationMs, bytes, layers } = outcome;
      return { ...identity, source: 'registry', pull: { durationMs, bytes, layers, shared } };
    } finally {
      if (listener) pull.listeners.delete(listener);
      pull.waiters -= 1;
      // Nobody needs it any more (every job waiting on it was stopped): stop pulling.
      if (pull.waiters === 0 && this.pulls.get(key) === pull) {
        this.endPull(key, pull);
        pull.abort.abort('no job waits for it');
      }
    }
  }

  private startPull(image: string, key: string, log: Logger): SharedPull {
    const abort = new AbortController();
    const listeners = new Set<(progress: PullProgress) => void>();
    const credential = this.credentials.forImage(image);
    log.info({ image, authenticated: credential !== undefined }, 'pulling image');
    const done = pullImage(this.docker, image, {
      credential,
      settings: this.pullSettings,
      signal: abort.signal,
      onProgress: (progress) => {
        pull.latest = progress;
        for (const listener of listeners) listener(progress);
      },
    }).finally(() => this.endPull(key, pull));
    const pull: SharedPull = { done, abort, listeners, latest: null, waiters: 0 };
    done.then(
      (outcome) => log.info({ image, bytes: outcome.bytes, durationMs: outcome.durationMs }, 'image pulled'),
      (error: unknown) => log.warn({ image, err: error }, 'image pull failed'),
    );
    this.pulls.set(key, pull);
    return pull;
  }

  /** The next job that needs the image starts a pull of its own. */
  private endPull(key: string, pull: SharedPull): void {
    if (this.pulls.get(key) === pull) this.pulls.delete(key);
  }
}

/** Settles as `done`, or rejects when `signal` aborts first (the promise itself goes on). */
function waitOrAbort<T>(done: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return done;
  if (signal.aborted)
    return Promise.reject(new Error('stopped waiting for the image', { cause: signal.reason }));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new Error('stopped waiting for the image', { cause: signal.reason }));
    signal.addEventListener('abort', onAbort, { once: true });
    done.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * The repo digest that says where the image came from: the one the pull just got, else the
 * engine's for the reference's repository; a digest reference is its own answer.
 */
function repoDigestOf(
  info: Pick<Dockerode.ImageInspectInfo, 'RepoDigests'>,
  ref: ImageRef,
  reference: string,
  pulledDigest?: string | null,
): string | null {
  const mine = (info.RepoDigests ?? []).filter((d) => sameRepository(d, ref));
  const wanted = ref.digest ?? pulledDigest ?? null;
  if (wanted) return mine.find((d) => d.endsWith(`@${wanted}`)) ?? `${nameOf(reference)}@${wanted}`;
  return mine[0] ?? null;
}
