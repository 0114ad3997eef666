import { Job, Queue } from 'bullmq';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { connect } from '../../src/jobs/connection.js';
import { bullmqKeys, DEFAULT_PREFIX, keys, type QueueAddress } from '../../src/jobs/keys.js';
import { type JobResult, resultWithoutRun } from '../../src/jobs/result.js';
import { writeFencedSideResult } from '../../src/worker/fenced-result.js';
import { ClusterTopology } from '../helpers/redis-cluster-topology.js';
import { silentRegistry } from '../helpers/silent-registry.js';
import { busybox, testQueue, until, untilRunning, useTestWorld } from '../helpers/stevedore.js';

/** A result as a worker named `worker` would write it. */
const resultBy = (jobId: string, worker: string, state: JobResult['state'] = 'Failed'): JobResult =>
  resultWithoutRun({
    jobId,
    data: {},
    state,
    reason: 'infra',
    attempt: 1,
    worker: { host: 'test', id: worker },
    error: { phase: 'running', message: `written by ${worker}` },
  });

const OTHER_TOKEN = 'another-worker:0';

describe('the fenced side-result script', () => {
  const world = useTestWorld();
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it('writes the result and the run only while the lock holds the token; nothing when it is another or gone', async () => {
    const { raw } = world;
    const address: QueueAddress = { prefix: DEFAULT_PREFIX, queue: testQueue() };
    const lock = bullmqKeys.lock(address, 'j1');
    const run = {
      attempt: 1,
      worker: 'w1',
      state: 'Failed',
      reason: 'infra',
      error: 'pull stalled',
    } as const;

    await raw.set(lock, 'w1:0');
    expect(
      await writeFencedSideResult(raw, address, {
        jobId: 'j1',
        result: resultBy('j1', 'w1'),
        token: 'w1:0',
        run,
      }),
    ).toBe(true);
    expect(JSON.parse((await raw.get(keys.result(address, 'j1'))) ?? '{}').worker.id).toBe('w1');
    expect(await raw.lrange(keys.runs(address, 'j1'), 0, -1)).toHaveLength(1);
    expect(await raw.ttl(keys.runs(address, 'j1'))).toBeGreaterThan(0);

    // Another worker holds the job now: nothing of w1's is written, its result stands.
    await raw.set(lock, OTHER_TOKEN);
    await raw.set(keys.result(address, 'j1'), JSON.stringify(resultBy('j1', 'w2')));
    expect(
      await writeFencedSideResult(raw, address, {
        jobId: 'j1',
        result: resultBy('j1', 'w1'),
        token: 'w1:0',
        run,
      }),
    ).toBe(false);
    expect(JSON.parse((await raw.get(keys.result(address, 'j1'))) ?? '{}').worker.id).toBe('w2');
    expect(await raw.lrange(keys.runs(address, 'j1'), 0, -1)).toHaveLength(1);

    // The lock expired and nobody took the job yet: no write either.
    await raw.del(lock);
    expect(
      await writeFencedSideResult(raw, address, { jobId: 'j2', result: resultBy('j2', 'w1'), token: 'w1:0' }),
    ).toBe(false);
    expect(await raw.exists(keys.result(address, 'j2'))).toBe(0);
  });

  it('runs on a Redis Cluster: the lock, result and history keys share the hash-tagged prefix slot', async () => {
    const topology = await ClusterTopology.start();
    cleanup.push(() => topology.close());
    const cluster = connect({
      clusterNodes: topology.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })),
    });
    cleanup.push(async () => {
      await cluster.quit();
    });
    const address: QueueAddress = { prefix: '{stevedore}', queue: testQueue() };
    await cluster.set(bullmqKeys.lock(address, 'c1'), 'w1:0');
    const run = {
      attempt: 1,
      worker: 'w1',
      state: 'Failed',
      reason: 'infra',
      error: 'pull stalled',
    } as const;
    expect(
      await writeFencedSideResult(cluster, address, {
        jobId: 'c1',
        result: resultBy('c1', 'w1'),
        token: 'w1:0',
        run,
      }),
    ).toBe(true);
    expect(
      await writeFencedSideResult(cluster, address, {
        jobId: 'c1',
        result: resultBy('c1', 'w1'),
        token: OTHER_TOKEN,
        run,
      }),
    ).toBe(false);
    expect(await cluster.lrange(keys.runs(address, 'c1'), 0, -1)).toHaveLength(1);
  });
});

describe('a worker whose job lock was taken by another owner', () => {
  const world = useTestWorld();

  /** Plays the job's new owner: takes its lock now, and later stores its own result with BullMQ. */
  async function takeOver(jobId: string) {
    const { h, raw } = world;
    const address: QueueAddress = { prefix: DEFAULT_PREFIX, queue: h.queue };
    await raw.set(bullmqKeys.lock(address, jobId), OTHER_TOKEN, 'PX', 120_000);
    return {
      address,
      complete: async (): Promise<void> => {
        const queue = new Queue(h.queue, { connection: { host: '127.0.0.1', port: world.redis.port } });
        try {
          const job = (await Job.fromId<unknown, JobResult>(queue, jobId)) as Job<unknown, JobResult>;
          await job.moveToCompleted(resultBy(jobId, 'another-worker', 'Complete'), OTHER_TOKEN, false);
        } finally {
          await queue.close();
        }
      },
    };
  }

  it('a run that ends after losing its lock stores no result; the other owner’s result stands', async () => {
    const { h } = world;
    // A long lock: the worker would notice the loss only at its renewal, after the run has ended.
    await h.worker({ lockDurationMs: 60_000 }, { logger: pino({ level: 'silent' }) });
    const client = h.client();
    const { id } = await client.submit(busybox(['sh', '-c', 'sleep 2; echo first-owner']), { attempts: 1 });
    await untilRunning(client, id);
    const owner = await takeOver(id);
    // The first owner's container exits; BullMQ's store of its return value checks the lock token.
    await until(async () => (await client.getProgress(id))?.phase === 'done', 30_000);
    await new Promise((r) => setTimeout(r, 500));
    expect(await client.getResult(id)).toBeNull();
    await owner.complete();
    const result = await client.waitForResult(id, { timeoutMs: 10_000 });
    expect(result.worker).toMatchObject({ id: 'another-worker' });
  });

  it('a run that fails after losing its lock writes neither its side result nor its history entry', async () => {
    const { h, raw } = world;
    const silent = await silentRegistry();
    try {
      await h.worker({ lockDurationMs: 60_000, pullStallMs: 3_000 });
      const client = h.client();
      const { id } = await client.submit(
        { image: `${silent.host}/hangs/app:1`, command: ['true'] },
        { attempts: 1 },
      );
      await until(async () => (await client.getProgress(id))?.phase === 'loading-image');
      const owner = await takeOver(id);
      // The pull stalls and the run fails as infra: its fenced write finds another owner's token.
      await until(async () => (await client.getProgress(id))?.phase === 'done', 30_000);
      const runs = async () =>
        (await raw.lrange(keys.runs(owner.address, id), 0, -1)).map((l) => JSON.parse(l));
      await until(async () => (await runs()).length > 0);
      expect((await runs()).map((r) => r.error)).toEqual([
        'lost the job lock before writing its result: another worker may own this job; no result written',
      ]);
      expect(await raw.exists(keys.result(owner.address, id))).toBe(0);
      expect(await client.getResult(id)).toBeNull();
      await owner.complete();
      expect((await client.waitForResult(id, { timeoutMs: 10_000 })).worker).toMatchObject({
        id: 'another-worker',
      });
    } finally {
      await silent.close();
    }
  });
});
