import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, QueueEvents } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobProgress } from '../../src/jobs/progress.js';
import { testDocker } from '../helpers/docker.js';
import { recordingLogger } from '../helpers/logs.js';
import { TestRegistry } from '../helpers/registry.js';
import { buildTestImage, pushImage, removeImage } from '../helpers/registry-images.js';
import { eventLines, eventsOf, writeDockerConfig } from '../helpers/registry-jobs.js';
import { RegistryProxy } from '../helpers/registry-proxy.js';
import { silentRegistry } from '../helpers/silent-registry.js';
import { until, useTestWorld } from '../helpers/stevedore.js';

// How pulls behave under load and trouble: shared by concurrent jobs, timed out when stalled,
// watched through progress, and never a word of the credentials anywhere a user can read.
const docker = testDocker();
const AUTH = { username: 'pulls-user', password: 'pulls-Pa55-c0ffee' };
const LOCAL = 'stevedore-test/registry-pulls:big';
const NAME = 'pulls/big';
/** Four layers of random data, enough bytes for a pull that takes a while through the paced proxy. */
const BIG = { variant: 'pulls-big', randomBytes: 24 * 1024 * 1024, layers: 4 };
let registry: TestRegistry;
let imageId: string;
let dir: string;

beforeAll(async () => {
  registry = await TestRegistry.start({ auth: AUTH });
  imageId = await buildTestImage(docker, LOCAL, BIG);
  await pushImage(docker, LOCAL, registry.ref(NAME, '1'), registry.authconfig());
  await removeImage(docker, imageId);
  dir = await mkdtemp(join(tmpdir(), 'stevedore-registry-pulls-'));
});

afterAll(async () => {
  await removeImage(docker, imageId);
  await registry?.close();
  await rm(dir, { recursive: true, force: true });
});

const world = useTestWorld();

/** Every progress snapshot a job publishes, as QueueEvents sees them. */
async function watchProgress(): Promise<{ of: (id: string) => JobProgress[]; close: () => Promise<void> }> {
  const events = new QueueEvents(world.h.queue, {
    connection: { host: '127.0.0.1', port: world.redis.port },
  });
  await events.waitUntilReady();
  const seen = new Map<string, JobProgress[]>();
  events.on('progress', ({ jobId, data }) => {
    seen.set(jobId, [...(seen.get(jobId) ?? []), data as JobProgress]);
  });
  return { of: (id) => seen.get(id) ?? [], close: () => events.close() };
}

describe('image pulls', () => {
  it('4 jobs at once that need the same missing image wait on one pull', async () => {
    const proxy = await RegistryProxy.start(registry.port, { held: true });
    try {
      const auth = await writeDockerConfig(join(dir, 'shared.json'), { [proxy.host]: AUTH });
      await world.h.worker({ concurrency: 4, registryAuth: { path: auth, required: true } });
      const client = world.h.client();
      const before = await registry.fetched(NAME);
      const image = `${proxy.host}/${NAME}:1`;
      const ids = await Promise.all(
        [1, 2, 3, 4].map(async () => (await client.submit({ image, command: ['cat', '/variant'] })).id),
      );
      // All four in loading-image before the registry answers at all.
      await until(async () => {
        const phases = await Promise.all(ids.map(async (id) => (await client.getProgress(id))?.phase));
        return phases.every((p) => p === 'loading-image');
      });
      proxy.open();
      const results = await Promise.all(ids.map((id) => client.waitForResult(id, { timeoutMs: 60_000 })));
      for (const r of results) expect(r).toMatchObject({ state: 'Complete', exitCode: 0, imageId });
      const pulls = await Promise.all(results.map(async (r) => eventLines(await eventsOf(r), 'pull')[0]));
      expect(pulls.filter((p) => p?.shared === false)).toHaveLength(1);
      expect(pulls.filter((p) => p?.shared === true)).toHaveLength(3);
      // One pull: one manifest GET and one GET of each blob (the engine lacked them all but busybox).
      const after = await registry.fetched(NAME);
      expect(after.manifests.length - before.manifests.length).toBe(1);
      const blobs = after.blobs.slice(before.blobs.length);
      expect(blobs.length).toBeGreaterThanOrEqual(BIG.layers + 1);
      expect(new Set(blobs).size).toBe(blobs.length);
    } finally {
      await proxy.close();
      await removeImage(docker, imageId);
    }
  });

  it('shows a pull moving in the job progress: pull.bytes grows toward totalBytes', async () => {
    // About 3 s for the image's ~24 MB: long enough for several coalesced progress writes.
    const proxy = await RegistryProxy.start(registry.port, { bytesPerSecond: 8 * 1024 * 1024 });
    const progress = await watchProgress();
    try {
      const auth = await writeDockerConfig(join(dir, 'paced.json'), { [proxy.host]: AUTH });
      await world.h.worker({ registryAuth: { path: auth, required: true } });
      const client = world.h.client();
      const image = `${proxy.host}/${NAME}:1`;
      const { id } = await client.submit({ image, command: ['true'] });
      const result = await client.waitForResult(id, { timeoutMs: 60_000 });
      expect(result).toMatchObject({ state: 'Complete', imageId });
      const pulls = progress
        .of(id)
        .filter((p) => p.phase === 'loading-image' && p.pull)
        .map((p) => p.pull as NonNullable<JobProgress['pull']>);
      expect(pulls.length).toBeGreaterThanOrEqual(3);
      const bytes = pulls.map((p) => p.bytes);
      expect(new Set(bytes).size).toBeGreaterThanOrEqual(3);
      expect(bytes).toEqual([...bytes].sort((a, b) => a - b));
      const last = pulls.at(-1) as NonNullable<JobProgress['pull']>;
      expect(last.image).toBe(image);
      expect(last.layers).toBeGreaterThan(BIG.layers); // the data layers, /variant's and busybox's (already there)
      expect(last.layersDone).toBeLessThanOrEqual(last.layers);
      expect(last.bytes).toBeLessThanOrEqual(last.totalBytes);
      expect(last.totalBytes).toBeGreaterThan(BIG.randomBytes);
    } finally {
      await progress.close();
      await proxy.close();
      await removeImage(docker, imageId);
    }
  });

  it('a registry that accepts connections and never answers hits the stall timeout: infra, retried', async () => {
    const silent = await silentRegistry();
    try {
      await world.h.worker({ pullStallMs: 1_500 });
      const client = world.h.client();
      const { id } = await client.submit(
        { image: `${silent.host}/hangs/app:1`, command: ['true'] },
        { attempts: 2, backoff: { type: 'fixed', delay: 50 } },
      );
      const result = await client.waitForResult(id, { timeoutMs: 30_000 });
      expect(result).toMatchObject({ state: 'Failed', reason: 'infra', attempt: 2, containerId: null });
      expect(result.error?.phase).toBe('loading-image');
      expect(result.error?.message).toMatch(/made no progress for 1500 ms \(STEVEDORE_PULL_STALL_MS\)/);
    } finally {
      await silent.close();
    }
  });

  it('a pull that failed for one attempt is not remembered: the retry pulls afresh and runs', async () => {
    const proxy = await RegistryProxy.start(registry.port, { held: true });
    const queue = new Queue(world.h.queue, { connection: { host: '127.0.0.1', port: world.redis.port } });
    try {
      const auth = await writeDockerConfig(join(dir, 'retry.json'), { [proxy.host]: AUTH });
      await world.h.worker({ pullStallMs: 1_000, registryAuth: { path: auth, required: true } });
      const client = world.h.client();
      const { id } = await client.submit(
        { image: `${proxy.host}/${NAME}:1`, command: ['cat', '/variant'] },
        { attempts: 2, backoff: { type: 'fixed', delay: 1_500 } },
      );
      // The first attempt stalls behind the held proxy; the registry is back during the backoff.
      await until(async () => ((await queue.getJob(id))?.attemptsMade ?? 0) >= 1);
      proxy.open();
      const result = await client.waitForResult(id, { timeoutMs: 60_000 });
      expect(result).toMatchObject({ state: 'Complete', exitCode: 0, attempt: 2, imageId });
      expect(result.attempts.map((a) => a.reason)).toEqual(['infra', 'exited']);
    } finally {
      await queue.close();
      await proxy.close();
      await removeImage(docker, imageId);
    }
  });

  it('never shows the credentials in the worker log, the result, the progress or events.log', async () => {
    const recorded = recordingLogger('debug');
    const progress = await watchProgress();
    try {
      const auth = await writeDockerConfig(join(dir, 'secret.json'), { [registry.host]: AUTH });
      await world.h.worker({ registryAuth: { path: auth, required: true } }, { logger: recorded.logger });
      const client = world.h.client();
      const good = await client.submit({ image: registry.ref(NAME, '1'), command: ['true'] });
      const missing = await client.submit({ image: registry.ref(NAME, 'nope'), command: ['true'] });
      const results = await Promise.all(
        [good, missing].map(({ id }) => client.waitForResult(id, { timeoutMs: 60_000 })),
      );
      expect(results.map((r) => r.state)).toEqual(['Complete', 'Failed']);
      const secrets = [AUTH.password, Buffer.from(`${AUTH.username}:${AUTH.password}`).toString('base64')];
      const readable = [
        recorded.lines().join('\n'),
        JSON.stringify(results),
        JSON.stringify([...progress.of(good.id), ...progress.of(missing.id)]),
        ...(await Promise.all(results.map((r) => eventsOf(r)))),
        ...(await Promise.all(results.map((r) => readFile(r.stdout.path as string, 'utf8')))),
      ].join('\n');
      expect(readable).toContain('registry credentials read'); // the log was recorded at all
      expect(readable).toContain(registry.host);
      for (const secret of secrets) expect(readable).not.toContain(secret);
    } finally {
      await progress.close();
      await removeImage(docker, imageId);
    }
  });
});
