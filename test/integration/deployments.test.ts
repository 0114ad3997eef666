import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { WorkerConfig } from '../../src/config/worker.js';
import { SingularityRuntime } from '../../src/executors/index.js';
import type { StevedoreClient } from '../../src/jobs/client.js';
import { bullmqKeys } from '../../src/jobs/keys.js';
import { LABELS } from '../../src/jobs/names.js';
import type { WorkerDeps } from '../../src/worker/worker.js';
import { TEST_IMAGE, testDocker } from '../helpers/docker.js';
import { useLeakCheck } from '../helpers/leaks.js';
import { openTestPodman } from '../helpers/podman.js';
import { TestRedis } from '../helpers/redis.js';
import { testSingularityBin } from '../helpers/singularity.js';
import { busybox, Harness, until, untilRunning } from '../helpers/stevedore.js';

/**
 * Two deployments (two Redis servers) with one queue name on one engine: each worker touches
 * only its own deployment's containers, and a container made before containers carried the
 * deployment is still adopted by the deployment whose Redis names it. On every runtime: Docker
 * and Podman list containers by label from the engine, Apptainer from its records on the host.
 */

/** A runtime as these tests drive it: worker settings, and how a container's state is read. */
interface Engine {
  name: string;
  /** Null when the runtime cannot be had here, with the reason printed. */
  skip: string | null;
  config: Partial<WorkerConfig>;
  deps: WorkerDeps;
  state(id: string): Promise<string | null>;
  /** The engine's API (Docker's or Podman's); null for Apptainer. */
  api: Dockerode | null;
}

const { podman, reason: podmanReason } = await openTestPodman('deployments-holders');
const bin = await testSingularityBin();
const records = await mkdtemp(join(tmpdir(), 'stevedore-deployments-records-'));
const sif = bin ? await SingularityRuntime.open({ bin, stateDir: records }) : null;
afterAll(async () => {
  if (podman) expect(await podman.close()).toEqual([]);
  await rm(records, { recursive: true, force: true });
});

const engineState = (api: Dockerode) => (id: string) =>
  api
    .getContainer(id)
    .inspect()
    .then(
      (info) => info.State.Status,
      () => null,
    );

const engines: Engine[] = [
  { name: 'docker', skip: null, config: {}, deps: {}, api: testDocker(), state: engineState(testDocker()) },
  {
    name: 'podman',
    skip: podmanReason,
    config: { runtime: 'podman', podmanSocket: podman?.socket },
    deps: {},
    api: podman ? new Dockerode({ socketPath: podman.socket }) : null,
    state: podman ? engineState(new Dockerode({ socketPath: podman.socket })) : async () => null,
  },
  {
    name: 'apptainer',
    skip: bin ? null : 'neither apptainer nor singularity is installed',
    // Both deployments' workers keep their records in one directory, as two on one host do by default.
    config: { runtime: 'singularity', singularity: { bin: bin ?? undefined } },
    deps: { runtimeOptions: { singularity: { stateDir: records } } },
    api: null,
    state: async (id) => (sif ? sif.containerState(id) : null),
  },
];

// Its own set-up, not useTestWorld: two deployments need two Redis servers.
describe.each(engines)('two deployments on one $name engine, one queue name', (engine) => {
  if (engine.skip) console.warn(`[skip] deployments on ${engine.name}: ${engine.skip}`);
  useLeakCheck();
  let redisA: TestRedis;
  let redisB: TestRedis;
  let a: Harness;
  let b: Harness;

  beforeAll(async () => {
    if (engine.skip) return;
    [redisA, redisB] = await Promise.all([TestRedis.start(), TestRedis.start()]);
  });
  afterAll(async () => {
    await Promise.all([redisA?.close(), redisB?.close()]);
  });
  afterEach(async () => {
    await a?.close();
    await b?.close();
  }, 120_000);

  const worker = (h: Harness, overrides: Partial<WorkerConfig> = {}) =>
    h.worker({ ...engine.config, ...overrides }, engine.deps);
  const containerOf = async (client: StevedoreClient, id: string): Promise<string> =>
    until(async () => (await client.getProgress(id))?.containerId);
  const long = busybox(['sleep', '60'], { stopGraceSeconds: 0 });

  it.skipIf(engine.skip !== null)(
    "each one's reconcile leaves the other's running containers alone, and one job id runs in both",
    async () => {
      a = new Harness(redisA);
      b = new Harness(redisB, a.queue);
      await worker(a, { lockDurationMs: 1_000 });
      await worker(b, { lockDurationMs: 1_000 });
      const [ca, cb] = [a.client(), b.client()];
      // The same id in both: their containers' names must not collide.
      const jobs: [StevedoreClient, string][] = [
        [ca, 'only-in-a'],
        [cb, 'only-in-b'],
        [ca, 'in-both'],
        [cb, 'in-both'],
      ];
      for (const [client, jobId] of jobs) await client.submit(long, { jobId });
      for (const [client, jobId] of jobs) await untilRunning(client, jobId, 60_000);
      const containers = await Promise.all(jobs.map(([client, jobId]) => containerOf(client, jobId)));
      expect(new Set(containers).size).toBe(4);
      // Older than the grace period; then a new worker of each reconciles at start.
      await new Promise((r) => setTimeout(r, 1_500));
      await worker(a, { lockDurationMs: 1_000 });
      await worker(b, { lockDurationMs: 1_000 });
      await new Promise((r) => setTimeout(r, 4_500)); // and the running ones once more (every 4 lock durations)
      for (const id of containers) expect(await engine.state(id)).toBe('running');
      const [idA, idB] = [await a.deployment(), await b.deployment()];
      expect(idA).toMatch(/^[0-9a-f]{12}$/);
      expect(idA).not.toBe(idB);
      const labelsOf = async (id: string): Promise<Record<string, string> | undefined> =>
        engine.api
          ? (await engine.api.getContainer(id).inspect()).Config.Labels
          : (await sif?.listContainers({}))?.find((c) => c.id === id)?.labels;
      const labels = await Promise.all(containers.map(labelsOf));
      expect(labels.map((l) => l?.[LABELS.deployment])).toEqual([idA, idB, idA, idB]);
      for (const [client, jobId] of jobs) await client.cancel(jobId);
      for (const [client, jobId] of jobs)
        expect((await client.waitForResult(jobId, { timeoutMs: 15_000 })).state).toBe('Cancelled');
    },
    // A bound against hangs: four workers and four containers on Podman took over 60 s on a loaded machine.
    180_000,
  );

  it.skipIf(engine.skip !== null)(
    "a job taken again neither adopts nor removes another deployment's container of the same id",
    async () => {
      a = new Harness(redisA);
      b = new Harness(redisB, a.queue);
      await worker(a);
      const [ca, cb] = [a.client(), b.client()];
      await ca.submit(long, { jobId: 'twin' });
      await untilRunning(ca, 'twin', 60_000);
      const theirs = await containerOf(ca, 'twin');
      // In B, the same id, as if a crashed worker had taken it before (attempt 1, started once).
      await cb.submit(busybox(['echo', 'own run in b']), { jobId: 'twin', delay: 1_000 });
      const raw = new Redis(redisB.url);
      raw.on('error', () => undefined); // a failed command rejects; the event adds nothing
      await raw.hset(bullmqKeys.job({ prefix: 'bull', queue: b.queue }, 'twin'), 'ats', '1');
      raw.disconnect();
      await worker(b);
      const result = await cb.waitForResult('twin', { timeoutMs: 60_000 });
      expect(result).toMatchObject({ state: 'Complete', exitCode: 0, adopted: false });
      expect(result.stdout.tail).toBe('own run in b\n');
      expect(result.containerId).not.toBe(theirs);
      expect(await engine.state(theirs)).toBe('running');
      await ca.cancel('twin');
      expect((await ca.waitForResult('twin', { timeoutMs: 15_000 })).state).toBe('Cancelled');
    },
  );

  // Apptainer cannot adopt (its containers end with their worker): its legacy records are reconciled by the same rule.
  it.skipIf(engine.skip !== null || engine.api === null)(
    'a container made before the deployment label is adopted when its Redis names it, and left alone when not',
    async () => {
      const api = engine.api as Dockerode;
      a = new Harness(redisA);
      b = new Harness(redisB, a.queue);
      const ca = a.client();
      // The test image on this engine, for the hand-made containers.
      const loader = await worker(a);
      await ca.waitForResult((await ca.submit(busybox(['true']))).id, { timeoutMs: 30_000 });
      await loader.close();
      await ca.submit(busybox(['true']), { jobId: 'from-before', delay: 1_000 });
      // As the previous version made it: queue, job id, attempt and worker labels; no deployment.
      const legacy = (jobId: string, cmd: string) =>
        api.createContainer({
          Image: TEST_IMAGE,
          Cmd: ['sh', '-c', cmd],
          Labels: {
            [LABELS.queue]: a.queue,
            [LABELS.jobId]: jobId,
            [LABELS.attempt]: '1',
            [LABELS.workerId]: 'old-version',
          },
          HostConfig: { NetworkMode: 'none' },
        });
      const ours = await legacy('from-before', 'sleep 1; echo made by the old version');
      const unproven = await legacy('nobody-knows', 'sleep 60');
      try {
        await Promise.all([ours.start(), unproven.start()]);
        const raw = new Redis(redisA.url);
        raw.on('error', () => undefined); // a failed command rejects; the event adds nothing
        const at = new Date().toISOString();
        const progress = {
          phase: 'running',
          at,
          history: [],
          attempt: 1,
          worker: 'old-version',
          containerId: ours.id,
        };
        await raw.hset(bullmqKeys.job({ prefix: 'bull', queue: a.queue }, 'from-before'), {
          ats: '1',
          progress: JSON.stringify(progress),
        });
        raw.disconnect();
        await new Promise((r) => setTimeout(r, 1_200)); // older than the grace period
        await worker(a, { lockDurationMs: 1_000 });
        await worker(b, { lockDurationMs: 1_000 });
        const result = await ca.waitForResult('from-before', { timeoutMs: 30_000 });
        expect(result).toMatchObject({ state: 'Complete', exitCode: 0, adopted: true, containerId: ours.id });
        expect(result.stdout.tail).toBe('made by the old version\n');
        await new Promise((r) => setTimeout(r, 4_500)); // a reconcile of each running worker
        expect(await engine.state(unproven.id)).toBe('running');
      } finally {
        await unproven.remove({ force: true });
        await ours.remove({ force: true }).catch(() => undefined); // the adopting worker removed it
      }
    },
  );
});
