import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type Dockerode from 'dockerode';
import {
  coerceError,
  ImageUnavailableError,
  InfrastructureError,
  PhaseError,
  statusCodeOf,
} from '../../jobs/errors.js';
import { canonicalRef, parseImageRef } from '../../jobs/image-ref.js';
import { OneImageTarball } from './one-image-tarball.js';

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
      `cannot inspect image ${image}: ${coerceError(error).message}`,
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

/** The canonical form of a reference (docker.io/library/…:latest), or the text itself when it is none. */
function canonical(reference: string): string {
  const ref = parseImageRef(reference);
  return typeof ref === 'string' ? reference : canonicalRef(ref);
}

/** The tarball holds no image tagged as the job's. */
function notContained(tarballPath: string, image: string, messages: LoadMessage[]): ImageUnavailableError {
  const loaded = messages
    .map((m) => m.stream?.trim())
    .filter(Boolean)
    .join('; ');
  return new ImageUnavailableError(
    `tarball ${tarballPath} does not contain ${image} (engine said: ${loaded || 'nothing'}): give a tarball made by "docker save ${image}"`,
  );
}

/** A tarball the filter cut: its own fault (another try reads the same bytes), so never retried. */
function cutTarball(tarballPath: string, image: string, problem: string): ImageUnavailableError {
  return new ImageUnavailableError(
    `tarball ${tarballPath} was not loaded: ${problem} (engines read it otherwise than a "docker save" tarball); give a tarball made by "docker save ${image}"`,
  );
}

/**
 * Loads `image` into the engine from its `docker save` tarball, and nothing else: the tarball
 * reaches the engine rewritten to name that one image under that one tag (one-image-tarball.ts),
 * so every other tag on the engine stays as it was. Rejects with the engine's own message when
 * the load fails, and when the tarball did not contain the image.
 */
export async function loadImageTarball(docker: Dockerode, image: string, tarballPath: string): Promise<void> {
  try {
    const info = await stat(tarballPath);
    if (!info.isFile()) throw new Error('not a regular file');
  } catch (error) {
    throw new PhaseError(
      'loading-image',
      `cannot read image tarball ${tarballPath}: ${coerceError(error).message}`,
      {
        cause: error,
      },
    );
  }
  const wanted = canonical(image);
  const oneImage = new OneImageTarball((tag) => canonical(tag) === wanted);
  const source = createReadStream(tarballPath);
  // A read that fails mid-way ends the upload: the engine must not load a cut tarball as whole.
  const upload = new AbortController();
  let readError: Error | null = null;
  source.on('error', (error) => {
    readError = error;
    upload.abort(error);
  });
  oneImage.on('error', (error) => upload.abort(error));
  source.pipe(oneImage);
  let messages: LoadMessage[];
  try {
    const load = docker.loadImage as unknown as (
      file: NodeJS.ReadableStream,
      options: { quiet: boolean; abortSignal: AbortSignal },
    ) => Promise<NodeJS.ReadableStream>;
    const response = await load.call(docker, oneImage, { quiet: true, abortSignal: upload.signal });
    response.on('error', () => undefined); // read below; an error ends the loop with it
    messages = await readLoadResponse(response);
  } catch (error) {
    if (oneImage.report.problem) throw cutTarball(tarballPath, image, oneImage.report.problem);
    // Podman refuses a manifest with no image in it (HTTP 500 "one or more images are required").
    if (oneImage.report.sawManifest && oneImage.report.kept === null)
      throw notContained(tarballPath, image, []);
    const why = readError ? `cannot read it: ${coerceError(readError).message}` : coerceError(error).message;
    throw new PhaseError('loading-image', `engine refused tarball ${tarballPath}: ${why}`, { cause: error });
  } finally {
    source.destroy();
  }
  const { kept, problem } = oneImage.report;
  if (problem) throw cutTarball(tarballPath, image, problem);
  const failure = loadFailure(messages);
  if (failure) throw new PhaseError('loading-image', `engine could not load ${tarballPath}: ${failure}`);
  if (kept === null || !(await imagePresent(docker, image))) throw notContained(tarballPath, image, messages);
}
