import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type Dockerode from 'dockerode';
import { bundledImageTarball } from '../../src/cli/demo.js';
import { statusCodeOf } from '../../src/jobs/errors.js';
import { TEST_IMAGE } from './docker.js';

/** Holds the hash of what a test image was built from, so an identical request reuses it. */
export const IMAGE_INPUTS_LABEL = 'stevedore.test.image-inputs';
/** Bump when the way images are built changes, so images built the old way are rebuilt. */
const BUILD_RECIPE = 1;
/** Random data is written in pieces this size: large enough to be fast, small enough to stay off the heap's limits. */
const RANDOM_CHUNK_BYTES = 4 * 1024 * 1024;

export interface TestImageOptions {
  /** Written to /variant: tells images of the same tag apart (`cat /variant`). */
  variant: string;
  /** Total random (incompressible) bytes, split evenly over `layers`; 0 (default) adds no data layer. */
  randomBytes?: number;
  /** How many layers the random data is spread over (default 1): one blob GET each on a pull. */
  layers?: number;
}

/** One JSON line of the engine's answer to a build, push or pull. */
interface ProgressLine {
  status?: string;
  stream?: string;
  error?: string;
  errorDetail?: { message?: string };
  aux?: { ID?: string; Digest?: string };
}

/**
 * Reads an engine JSON-lines answer to its end; rejects with the engine's own message when a
 * line carries an error (the HTTP status was 200 all the same).
 */
export async function readProgress(stream: NodeJS.ReadableStream, what: string): Promise<ProgressLine[]> {
  const lines: ProgressLine[] = [];
  for await (const text of createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY })) {
    if (text.trim() === '') continue;
    const line = JSON.parse(text) as ProgressLine;
    if (line.error || line.errorDetail?.message) {
      throw new Error(`${what}: ${line.errorDetail?.message ?? line.error}`);
    }
    lines.push(line);
  }
  return lines;
}

/**
 * Builds `tag` FROM the test image with `/variant` holding `variant` and `layers` layers of random
 * data, and returns its image id. An image already under `tag` built from the same inputs is
 * reused, so test files can share one (its random data is then the same, too).
 */
export async function buildTestImage(
  docker: Dockerode,
  tag: string,
  options: TestImageOptions,
): Promise<string> {
  const base = await ensureBaseImage(docker);
  const randomTotal = options.randomBytes ?? 0;
  const layers = randomTotal > 0 ? (options.layers ?? 1) : 0;
  if (!Number.isInteger(layers) || layers < 0 || randomTotal < 0) {
    throw new Error(`buildTestImage ${tag}: layers must be a whole number ≥ 1 and randomBytes ≥ 0`);
  }
  const inputs = createHash('sha256')
    .update(JSON.stringify({ BUILD_RECIPE, base, variant: options.variant, randomTotal, layers }))
    .digest('hex');
  const existing = await docker
    .getImage(tag)
    .inspect()
    .catch((error: unknown) => {
      if (statusCodeOf(error) === 404) return undefined;
      throw error;
    });
  if (existing?.Config.Labels?.[IMAGE_INPUTS_LABEL] === inputs) return existing.Id;

  const context = await mkdtemp(join(tmpdir(), 'stevedore-test-image-'));
  try {
    const files = ['Dockerfile', 'variant'];
    const steps = [`FROM ${TEST_IMAGE}`, `LABEL ${IMAGE_INPUTS_LABEL}=${inputs}`, 'COPY variant /variant'];
    await writeFile(join(context, 'variant'), options.variant);
    await mkdir(join(context, 'data'));
    for (let i = 0; i < layers; i++) {
      // Spread the remainder over the first layers so the total is exactly what was asked.
      const size = Math.floor(randomTotal / layers) + (i < randomTotal % layers ? 1 : 0);
      await writeRandomFile(join(context, 'data', String(i)), size);
      files.push(`data/${i}`);
      steps.push(`COPY data/${i} /data/${i}`);
    }
    await writeFile(join(context, 'Dockerfile'), `${steps.join('\n')}\n`);
    // The legacy builder (the API's default on Engine 20.10); nocache: every build gets fresh layers.
    const stream = await docker.buildImage(
      { context, src: files },
      { t: tag, nocache: true, rm: true, forcerm: true },
    );
    const lines = await readProgress(stream, `building test image ${tag}`);
    const id = lines.find((l) => l.aux?.ID)?.aux?.ID;
    if (!id) throw new Error(`building test image ${tag}: the engine's answer carried no image id`);
    return id;
  } finally {
    await rm(context, { recursive: true, force: true });
  }
}

/** The test image's id; loaded from its bundled tarball when some test removed it. */
async function ensureBaseImage(docker: Dockerode): Promise<string> {
  const present = await docker
    .getImage(TEST_IMAGE)
    .inspect()
    .catch(() => undefined);
  if (present) return present.Id;
  const tarball = await bundledImageTarball();
  await readProgress(
    await docker.loadImage(createReadStream(tarball), { quiet: true }),
    `loading ${tarball}`,
  );
  return (await docker.getImage(TEST_IMAGE).inspect()).Id;
}

async function writeRandomFile(path: string, size: number): Promise<void> {
  const file = await open(path, 'w');
  try {
    for (let written = 0; written < size; written += RANDOM_CHUNK_BYTES) {
      await file.write(randomBytes(Math.min(RANDOM_CHUNK_BYTES, size - written)));
    }
  } finally {
    await file.close();
  }
}

/** `host:port/name:tag` → repository and tag (the tag is what follows the last ':' after the last '/'). */
function splitRef(ref: string): { repo: string; tag: string } {
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  if (colon <= slash) throw new Error(`reference ${ref} has no tag: give it as host:port/name:tag`);
  return { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) };
}

/**
 * Tags `localRef` as `registryRef` and pushes it with the engine; returns the manifest digest
 * (`sha256:…`). The `registryRef` tag stays in the engine: remove the image (by id, or every tag)
 * before a test pulls, or the engine already has its layers and fetches none.
 */
export async function pushImage(
  docker: Dockerode,
  localRef: string,
  registryRef: string,
  auth: Dockerode.AuthConfigObject = {},
): Promise<string> {
  const { repo, tag } = splitRef(registryRef);
  await docker.getImage(localRef).tag({ repo, tag });
  // Engine 20.10 wants an X-Registry-Auth header on every push ("missing X-Registry-Auth" without): {} for none.
  const stream = await docker.getImage(repo).push({ tag, authconfig: auth });
  const lines = await readProgress(stream, `pushing ${registryRef}`);
  const digest =
    lines.find((l) => l.aux?.Digest)?.aux?.Digest ??
    /digest: (sha256:[0-9a-f]{64})/.exec(lines.map((l) => l.status).join('\n'))?.[1];
  if (!digest) throw new Error(`pushing ${registryRef}: the engine's answer carried no digest`);
  return digest;
}

/** Removes an image by reference or id, every tag with it when given the id; an absent one is fine. */
export async function removeImage(docker: Dockerode, ref: string): Promise<void> {
  try {
    await docker.getImage(ref).remove({ force: true });
  } catch (error) {
    if (statusCodeOf(error) !== 404) throw error;
  }
}
