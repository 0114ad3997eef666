import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { StevedoreClient } from '../../src/jobs/client.js';
import type { SentinelTarget } from '../../src/jobs/connection.js';
import { startWorker } from '../../src/worker/worker.js';
import { stevedore } from '../helpers/cli.js';
import { useLeakCheck } from '../helpers/leaks.js';
import { SentinelTopology, sentinelWorkerConfig } from '../helpers/redis-topology.js';
import { busybox, testQueue } from '../helpers/stevedore.js';

/** The bound (#25): after a failover, workers take jobs again within this long, with no restart. */
const RECOVERY_MS = 10_000;

// Its own set-up, not useTestWorld: the Redis here is a master, a replica and three sentinels.
describe('a worker on Redis Sentinel', () => {
  useLeakCheck();
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it('takes jobs again within 10 s after the master is killed and a replica promoted, with no restart', async () => {
    const topology = await SentinelTopology.start();
    cleanup.push(() => topology.close());
    const dir = await mkdtemp(join(tmpdir(), 'stevedore-sentinel-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const queue = testQueue();
    const config = {
      ...(await sentinelWorkerConfig(topology, { dir, queue, name: 'sentinel' })),
      concurrency: 2,
    };
    expect(config.redisTopology).toMatchObject({ name: SentinelTopology.NAME });
    const worker = await startWorker(config, {
      logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    });
    cleanup.push(() => worker.close({ graceMs: 0 }));
    const redis: SentinelTarget = config.redisTopology as SentinelTarget;
    const client = new StevedoreClient({ redis, queue });
    cleanup.push(() => client.close());

    const before = await client.submit(busybox(['echo', 'before']));
    expect((await client.waitForResult(before.id, { timeoutMs: 30_000 })).stdout.tail).toBe('before\n');

    const oldPort = await topology.masterPort();
    const killed = Date.now();
    const newPort = await topology.killMaster();
    const failedOver = Date.now();
    expect(newPort).not.toBe(oldPort);

    // Submitted after the failover; each must finish within the bound, measured from the promotion.
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await client.submit(busybox(['echo', `after ${i}`]))).id);
    for (const [i, id] of ids.entries()) {
      const left = Math.max(1, failedOver + RECOVERY_MS - Date.now());
      const result = await client.waitForResult(id, { timeoutMs: left }).catch((error: unknown) => {
        throw new Error(
          `job ${id}, submitted after the failover, had no result ${RECOVERY_MS} ms after it (the worker stopped taking jobs?): ${String(error)}`,
        );
      });
      expect(result.stdout.tail).toBe(`after ${i}\n`);
    }
    const done = Date.now();
    // The CLI reads the same settings, and finds the new master.
    const env = {
      REDIS_SENTINELS: topology.sentinelList,
      REDIS_SENTINEL_NAME: SentinelTopology.NAME,
      STEVEDORE_QUEUE: queue,
    };
    const shown = await stevedore(['result', ids[0] ?? ''], { env });
    expect(shown.exitCode, String(shown.stderr)).toBe(0);
    expect(JSON.parse(String(shown.stdout))).toMatchObject({ exitCode: 0, stdout: { tail: 'after 0\n' } });
    console.info(
      `sentinel failover: promoted ${failedOver - killed} ms after the kill; 3 jobs done ${done - failedOver} ms after the promotion`,
    );
  }, 120_000);
});
