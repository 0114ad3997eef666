import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ImageRequest, LoadedImage, PullProgress } from '../../src/executors/executor.js';
import { ImageUnavailableError } from '../../src/jobs/errors.js';
import { stubRun } from '../helpers/run-harness.js';
import { STUB_IMAGE_ID } from '../helpers/stub-executor.js';

const root = await mkdtemp(join(tmpdir(), 'stevedore-run-image-'));
afterAll(() => rm(root, { recursive: true, force: true }));

let runs = 0;
/** A fresh attempt directory, so the run writes its events.log there. */
const outputDir = (): string => join(root, `run-${++runs}`);

/** events.log's lines of one kind, their JSON part parsed ("<at> <kind> {…}"). */
async function eventsOf(dir: string, kind: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(join(dir, 'events.log'), 'utf8');
  return text
    .split('\n')
    .map((line) => /^\S+ (\S+)(?: (.*))?$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null && m[1] === kind)
    .map((m) => (m[2] ? (JSON.parse(m[2]) as Record<string, unknown>) : {}));
}

const IMAGE_ID = `sha256:${'1'.repeat(64)}`;
const DIGEST = `127.0.0.1:5000/team/app@sha256:${'2'.repeat(64)}`;
const PULLED: Omit<LoadedImage, 'request'> = {
  imageId: IMAGE_ID,
  imageDigest: DIGEST,
  source: 'registry',
  pull: { durationMs: 1234, bytes: 5_000, layers: 2, shared: false },
};
const progressOf = (bytes: number, layersDone: number): PullProgress => ({
  image: '127.0.0.1:5000/team/app:v1',
  layersDone,
  layers: 2,
  bytes,
  totalBytes: 5_000,
});

describe('runJob on a stub executor: loading the image', () => {
  it.each<[string, Record<string, unknown>, ImageRequest['pullPolicy']]>([
    ['a tag other than latest', { image: 'stub/image:1' }, 'if-not-present'],
    ['no tag', { image: 'busybox' }, 'always'],
    ['latest', { image: '127.0.0.1:5000/team/app:latest' }, 'always'],
    ['a digest', { image: `busybox@sha256:${'3'.repeat(64)}` }, 'if-not-present'],
    ["the spec's own policy", { image: 'busybox:latest', imagePullPolicy: 'never' }, 'never'],
    ['a tarball of :latest', { image: 'app:latest', imageTarball: '/images/app.tar' }, 'if-not-present'],
  ])('asks loadImage with the pull policy for %s', async (_what, spec, policy) => {
    const h = stubRun(spec);
    await h.run();
    const request = h.executor.imageRequest;
    expect(request?.pullPolicy).toBe(policy);
    expect(request?.image).toBe(spec.image);
    expect(request?.tarballPath).toBe(spec.imageTarball);
    expect(request?.signal).toBeInstanceOf(AbortSignal);
    expect(request?.signal?.aborted).toBe(false);
  });

  it("events.log has each image the runtime's cache evicted for this one", async () => {
    const dir = outputDir();
    const eviction = {
      imageId: `sha256:${'4'.repeat(64)}`,
      references: ['127.0.0.1:5000/team/old:1'],
      bytes: 7_000,
      lastUsedAt: '2026-12-01T00:00:00.000Z',
      reason: 'least recently used: the cache held 12000 bytes, over its cap of 10000',
    };
    const h = stubRun(
      { image: '127.0.0.1:5000/team/app:v1' },
      { image: { ...PULLED, evicted: [eviction] } },
      { outputDir: dir },
    );
    await h.run();
    expect(await eventsOf(dir, 'image-evicted')).toEqual([eviction]);
  });

  it('create() is handed the image loadImage() returned, with the request it answers', async () => {
    const h = stubRun({ image: '127.0.0.1:5000/team/app:v1' }, { image: PULLED });
    await h.run();
    expect(h.executor.createdImage).toEqual({
      ...PULLED,
      request: { image: '127.0.0.1:5000/team/app:v1', pullPolicy: 'if-not-present' },
    });
  });

  it('the result says which image ran, as loadImage found it; events.log has the pull and the image', async () => {
    const dir = outputDir();
    const h = stubRun({ image: '127.0.0.1:5000/team/app:v1' }, { image: PULLED }, { outputDir: dir });
    const { result } = await h.run();
    expect(result).toMatchObject({
      state: 'Complete',
      image: '127.0.0.1:5000/team/app:v1',
      imageId: IMAGE_ID,
      imageDigest: DIGEST,
    });
    expect(await eventsOf(dir, 'pull')).toEqual([
      { image: '127.0.0.1:5000/team/app:v1', durationMs: 1234, bytes: 5_000, layers: 2, shared: false },
    ]);
    expect(await eventsOf(dir, 'image')).toEqual([
      {
        image: '127.0.0.1:5000/team/app:v1',
        pullPolicy: 'if-not-present',
        source: 'registry',
        imageId: IMAGE_ID,
        imageDigest: DIGEST,
      },
    ]);
  });

  it('an image already present: an image line and no pull line; the digest stays null', async () => {
    const dir = outputDir();
    const { result } = await stubRun({}, {}, { outputDir: dir }).run();
    expect(result).toMatchObject({ imageId: STUB_IMAGE_ID, imageDigest: null });
    expect(await eventsOf(dir, 'pull')).toEqual([]);
    expect(await eventsOf(dir, 'image')).toEqual([
      {
        image: 'stub/image:1',
        pullPolicy: 'if-not-present',
        source: 'present',
        imageId: STUB_IMAGE_ID,
        imageDigest: null,
      },
    ]);
  });

  it('an adopted container reports the image its adoption found, without loading any', async () => {
    const h = stubRun(
      {},
      {
        capabilities: { adopt: true },
        adoption: { running: true, replayed: true, image: { imageId: IMAGE_ID, imageDigest: DIGEST } },
      },
      { adopt: { containerId: 'left-behind', fromWorker: 'worker-0' } },
    );
    const { result } = await h.run();
    expect(h.executor.calls).not.toContain('loadImage');
    expect(result).toMatchObject({ state: 'Complete', imageId: IMAGE_ID, imageDigest: DIGEST });
  });

  it('an adoption that cannot tell the image gives null identity, not a guess', async () => {
    const h = stubRun(
      {},
      { capabilities: { adopt: true } },
      { adopt: { containerId: 'c', fromWorker: 'w' } },
    );
    const { result } = await h.run();
    expect(result).toMatchObject({ imageId: null, imageDigest: null });
  });

  it('progress while loading-image carries the pull; later phases do not', async () => {
    // Held after loadImage returned, so the coalesced write of loading-image goes out first.
    const h = stubRun(
      { image: '127.0.0.1:5000/team/app:v1' },
      {
        image: PULLED,
        pullProgress: [progressOf(1_000, 0), progressOf(3_000, 1), progressOf(5_000, 2)],
        holds: ['runtime'],
      },
    );
    const outcome = h.run();
    const seen = await h.progressSeen((p) => p.pull !== undefined);
    expect(seen.phase).toBe('loading-image');
    expect(seen.pull).toEqual(progressOf(5_000, 2));
    h.executor.release('runtime');
    await outcome;
    const withPull = h.published.filter((p) => p.pull !== undefined);
    expect(withPull.every((p) => p.phase === 'loading-image')).toBe(true);
    expect(h.published.at(-1)?.pull).toBeUndefined();
  });

  it('a cancel while loadImage waits aborts its signal; the run ends Cancelled without create', async () => {
    const dir = outputDir();
    const h = stubRun({}, { holds: ['loadImage'] }, { outputDir: dir });
    const outcome = h.run();
    await h.executor.reached('loadImage');
    const signal = h.executor.imageRequest?.signal;
    expect(signal?.aborted).toBe(false);
    h.stop.abort('cancelled');
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBe('cancelled');
    h.executor.release('loadImage');
    const { result, error } = await outcome;
    expect(result).toMatchObject({ state: 'Cancelled', reason: 'cancelled', containerId: null });
    expect(error).toBeNull();
    expect(h.executor.calls).not.toContain('create');
    expect(await eventsOf(dir, 'stopped-before-start')).toEqual([{ reason: 'cancelled' }]);
  });

  it('a loadImage that gives up on the abort (as a real pull does) still ends as the stop, not as its error', async () => {
    const h = stubRun({}, { pullsUntilAborted: true });
    const outcome = h.run();
    await h.executor.reached('loadImage');
    h.stop.abort('cancelled');
    const { result, error } = await outcome;
    expect(result).toMatchObject({ state: 'Cancelled', reason: 'cancelled', error: null });
    expect(error).toBeNull();
    expect(h.executor.calls).not.toContain('create');
  });

  it('the max run time running out during a pull aborts the pull and ends as timeout', async () => {
    const h = stubRun({ maxRunTimeSeconds: 0.05 }, { pullsUntilAborted: true });
    const { result } = await h.run();
    expect(h.executor.imageRequest?.signal?.reason).toBe('timeout');
    expect(result).toMatchObject({ state: 'Cancelled', reason: 'timeout' });
    expect(h.executor.calls).not.toContain('create');
  });

  it('an ImageUnavailableError from loadImage fails the run with reason image, in loading-image', async () => {
    const failure = new ImageUnavailableError(
      'cannot pull 127.0.0.1:5000/a:nope: manifest for 127.0.0.1:5000/a:nope not found: manifest unknown: manifest unknown',
    );
    const h = stubRun({ image: '127.0.0.1:5000/a:nope' }, { failures: { loadImage: failure } });
    const { result, error } = await h.run();
    expect(result).toMatchObject({ state: 'Failed', reason: 'image', imageId: null, imageDigest: null });
    expect(result.error).toEqual({ phase: 'loading-image', message: failure.message });
    expect(result.error?.message).toContain('manifest unknown');
    expect(error).toBe(failure);
    expect(h.executor.calls).not.toContain('create');
  });
});
