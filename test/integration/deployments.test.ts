import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { StevedoreClient } from '../../src/jobs/client.js';
import { deploymentId } from '../../src/jobs/deployment.js';
import { bullmqKeys } from '../../src/jobs/keys.js';
import { LABELS } from '../../src/jobs/names.js';
import { TEST_IMAGE, testDocker } from '../helpers/docker.js';
import { TestRedis } from '../helpers/redis.js';
import { busybox, Harness, until, untilRunning } from '../helpers/stevedore.js';

/**
 * Two deployments (two Redis servers) with one queue name on one engine: each worker touches
 * only its own deployment's containers, and a container made before containers carried the
 * deployment is still adopted by the deployment whose Redis names it.
 */
describe('two deployments on one engine, one queue name', () => {
  let redisA: TestRedis;
  let redisB: TestRedis;
  let a: Harness;
  let b: Harness;

  beforeAll(async () => {
    [redisA, redisB] = await Promise.all([TestRedis.start(), TestRedis.start()]);
  });
  afterAll(async () => {
    await Promise.all([redisA.close(), redisB.close()]);
  });
  afterEach(async () => {
    await a.close();
    await b.close();
  });

  const containerOf = async (client: StevedoreClient, id: string): Promise<string> =>
    until(async () => (await client.getProgress(id))?.containerId);
  const state = (id: string): Promise<string | null> =>
    testDocker()
      .getContainer(id)
      .inspect()
      .then(
        (info) => info.State.Status,
        () => null,
      );
  const long = busybox(['sleep', '60'], { stopGraceSeconds: 0 });

  it("each one's reconcile leaves the other's running containers alone, and one job id runs in both", async () => {
    a = new Harness(redisA);
    b = new Harness(redisB, a.queue);
    await a.worker({ lockDurationMs: 1_000 });
    await b.worker({ lockDurationMs: 1_000 });
    const [ca, cb] = [a.client(), b.client()];
    // The same id in both: their containers' names must not collide.
    const jobs: [StevedoreClient, string][] = [
      [ca, 'only-in-a'],
      [cb, 'only-in-b'],
      [ca, 'in-both'],
      [cb, 'in-both'],
    ];
    for (const [client, jobId] of jobs) await client.submit(long, { jobId });
    for (const [client, jobId] of jobs) await untilRunning(client, jobId);
    const containers = await Promise.all(jobs.map(([client, jobId]) => containerOf(client, jobId)));
    expect(new Set(containers).size).toBe(4);
    // Older than the grace period; then a new worker of each reconciles at start.
    await new Promise((r) => setTimeout(r, 1_500));
    await a.worker({ lockDurationMs: 1_000 });
    await b.worker({ lockDurationMs: 1_000 });
    await new Promise((r) => setTimeout(r, 4_500)); // and the running ones once more (every 4 lock durations)
    for (const id of containers) expect(await state(id)).toBe('running');
    const idOf = async (h: Harness): Promise<string> => {
      const raw = new Redis(h.redis.url);
      try {
        return await deploymentId(raw, { prefix: 'bull', queue: h.queue });
      } finally {
        raw.disconnect();
      }
    };
    const [idA, idB] = [await idOf(a), await idOf(b)];
    expect(idA).not.toBe(idB);
    const labels = await Promise.all(
      containers.map(async (id) => (await testDocker().getContainer(id).inspect()).Config.Labels),
    );
    expect(labels.map((l) => l[LABELS.deployment])).toEqual([idA, idB, idA, idB]);
    for (const [client, jobId] of jobs) await client.cancel(jobId);
    for (const [client, jobId] of jobs)
      expect((await client.waitForResult(jobId, { timeoutMs: 15_000 })).state).toBe('Cancelled');
  });

  it("a job taken again does not adopt, nor remove, another deployment's container of the same id", async () => {
    a = new Harness(redisA);
    b = new Harness(redisB, a.queue);
    await a.worker();
    const [ca, cb] = [a.client(), b.client()];
    await ca.submit(long, { jobId: 'twin' });
    await untilRunning(ca, 'twin');
    const theirs = await containerOf(ca, 'twin');
    // In B, the same id, as if a crashed worker had taken it before (attempt 1, started once).
    await cb.submit(busybox(['echo', 'own run in b']), { jobId: 'twin', delay: 1_000 });
    const raw = new Redis(redisB.url);
    await raw.hset(bullmqKeys.job({ prefix: 'bull', queue: b.queue }, 'twin'), 'ats', '1');
    raw.disconnect();
    await b.worker();
    const result = await cb.waitForResult('twin', { timeoutMs: 20_000 });
    expect(result).toMatchObject({ state: 'Complete', exitCode: 0, adopted: false });
    expect(result.stdout.tail).toBe('own run in b\n');
    expect(result.containerId).not.toBe(theirs);
    expect(await state(theirs)).toBe('running');
    await ca.cancel('twin');
    expect((await ca.waitForResult('twin', { timeoutMs: 15_000 })).state).toBe('Cancelled');
  });

  it('a container made before the deployment label is adopted when its Redis names it, and left alone when not', async () => {
    a = new Harness(redisA);
    b = new Harness(redisB, a.queue);
    const ca = a.client();
    await ca.submit(busybox(['true']), { jobId: 'from-before', delay: 1_000 });
    // As the previous version made it: queue, job id, attempt and worker labels; no deployment.
    const legacy = (jobId: string, cmd: string) =>
      testDocker().createContainer({
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
      await a.worker({ lockDurationMs: 1_000 });
      await b.worker({ lockDurationMs: 1_000 });
      const result = await ca.waitForResult('from-before', { timeoutMs: 20_000 });
      expect(result).toMatchObject({ state: 'Complete', exitCode: 0, adopted: true, containerId: ours.id });
      expect(result.stdout.tail).toBe('made by the old version\n');
      await new Promise((r) => setTimeout(r, 4_500)); // a reconcile of each running worker
      expect(await state(unproven.id)).toBe('running');
    } finally {
      await unproven.remove({ force: true });
      await ours.remove({ force: true }).catch(() => undefined); // the adopting worker removed it
    }
  });
});
