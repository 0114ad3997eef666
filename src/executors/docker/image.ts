import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type Dockerode from 'dockerode';
import { ImageUnavailableError, InfrastructureError, PhaseError, statusCodeOf } from '../../jobs/errors.js';

interface LoadMessage {
  stream?: string;
  error?: string;
  errorDetail?: { message?: string };
}

/** The engine's record of `image` (id, repo digests); null when it has none. Other engine errors are infra. */
export async function inspectImage(
  docker: Dockerode,
  image: string,
): Promise<Pick<Dockerode.ImageInspectInfo, 'Id' | 'RepoDigests'> | null> {
  try {
    return await docker.getImage(image).inspect();
  } catch (error) {
    if (statusCodeOf(error) === 404) return null;
    throw new InfrastructureError(
      'loading-image',
      `cannot inspect image ${image}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

/** Whether the engine has `image`; an engine error other than 404 is an infrastructure error. */
export async function imagePresent(docker: Dockerode, image: string): Promise<boolean> {
  return (await inspectImage(docker, image)) !== null;
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
 * Loads `image` into the engine from its `docker save` tarball. Rejects with the engine's own
 * message when the load fails, and when the tarball did not contain the image.
 */
export async function loadImageTarball(docker: Dockerode, image: string, tarballPath: string): Promise<void> {
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
    // dockerode pipes the file into its request, and pipe() does not pass a read error on: it
    // is this stream's own 'error' event, which fails the load here instead of the process.
    const file = createReadStream(tarballPath);
    const unreadable = new Promise<never>((_, reject) => file.once('error', reject));
    unreadable.catch(() => undefined);
    file.on('error', () => undefined); // a second error of a failing read: the first is the answer
    const response = await Promise.race([docker.loadImage(file, { quiet: true }), unreadable]);
    messages = await Promise.race([readLoadResponse(response), unreadable]);
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
