import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type Dockerode from 'dockerode';
import { ImageUnavailableError, InfrastructureError, PhaseError, statusCodeOf } from '../../jobs/errors.js';

/**
 * How long an image seen present is taken as present without asking: a busy worker asks the
 * engine once per image this often instead of once per job. An image removed meanwhile makes
 * create fail with the engine's "No such image", which the executor answers by loading it again.
 */
const PRESENT_TTL_MS = 30_000;

/** Loads images into one engine and remembers, for PRESENT_TTL_MS, which ones it has seen there. */
export class DockerImages {
  /** Image reference → until when it counts as present (ms since epoch). */
  private readonly present = new Map<string, number>();

  constructor(private readonly docker: Dockerode) {}

  /** Makes `image` available: a no-op when recently seen or present, else loads the tarball. */
  async load(image: string, tarballPath?: string): Promise<void> {
    if ((this.present.get(image) ?? 0) > Date.now()) return;
    this.present.delete(image);
    await loadDockerImage(this.docker, image, tarballPath);
    this.present.set(image, Date.now() + PRESENT_TTL_MS);
  }

  /** Forgets that `image` was present (after the engine said it is not). */
  forget(image: string): void {
    this.present.delete(image);
  }
}

interface LoadMessage {
  stream?: string;
  error?: string;
  errorDetail?: { message?: string };
}

/** Whether the engine has `image`; an engine error other than 404 is an infrastructure error. */
export async function imagePresent(docker: Dockerode, image: string): Promise<boolean> {
  try {
    await docker.getImage(image).inspect();
    return true;
  } catch (error) {
    if (statusCodeOf(error) === 404) return false;
    throw new InfrastructureError(
      'loading-image',
      `cannot inspect image ${image}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

/** Reads the engine's JSON-lines answer to an image load or import; it says 200 even when that failed. */
export async function readLoadResponse(response: NodeJS.ReadableStream): Promise<LoadMessage[]> {
  let text = '';
  for await (const chunk of response) text += chunk.toString();
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line): LoadMessage => {
      try {
        return JSON.parse(line) as LoadMessage;
      } catch {
        return { stream: line };
      }
    });
}

/** The engine's error among the messages of a load or import, if any. */
export function loadFailure(messages: LoadMessage[]): string | undefined {
  const failure = messages.find((m) => m.error || m.errorDetail?.message);
  return failure ? (failure.errorDetail?.message ?? failure.error) : undefined;
}

/**
 * Makes `image` available to the engine: a no-op when present, otherwise loads the
 * `docker save` tarball. Rejects with the engine's own message when the load fails, and
 * when the tarball did not contain the image.
 */
export async function loadDockerImage(docker: Dockerode, image: string, tarballPath?: string): Promise<void> {
  if (await imagePresent(docker, image)) return;
  if (!tarballPath) {
    throw new ImageUnavailableError(
      `image ${image} is not present on this host and the job gives no imageTarball: load it on the host with "docker load" (or "docker pull" where a registry is reachable), or give the job an imageTarball; this version does not pull from registries`,
    );
  }
  try {
    const info = await stat(tarballPath);
    if (!info.isFile()) throw new Error('not a regular file');
  } catch (error) {
    throw new PhaseError(
      'loading-image',
      `cannot read image tarball ${tarballPath}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  let messages: LoadMessage[];
  try {
    const response = await docker.loadImage(createReadStream(tarballPath), { quiet: true });
    messages = await readLoadResponse(response);
  } catch (error) {
    throw new PhaseError(
      'loading-image',
      `engine refused tarball ${tarballPath}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  const failure = loadFailure(messages);
  if (failure) throw new PhaseError('loading-image', `engine could not load ${tarballPath}: ${failure}`);
  if (!(await imagePresent(docker, image))) {
    const loaded = messages
      .map((m) => m.stream?.trim())
      .filter(Boolean)
      .join('; ');
    throw new ImageUnavailableError(
      `tarball ${tarballPath} loaded but does not contain ${image} (engine said: ${loaded || 'nothing'}): give a tarball made by "docker save ${image}"`,
    );
  }
}
