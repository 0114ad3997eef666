import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { loadConfig, type WorkerConfig } from '../../src/config/worker.js';
import { StevedoreClient } from '../../src/jobs/client.js';
import type { ClusterTarget } from '../../src/jobs/connection.js';
import { startWorker } from '../../src/worker/worker.js';
import { stevedore } from '../helpers/cli.js';
import { useLeakCheck } from '../helpers/leaks.js';
import { ClusterTopology, clusterWorkerConfig } from '../helpers/redis-cluster-topology.js';
import { busybox, testQueue, untilRunning } from '../helpers/stevedore.js';

// Its own set-up, not useTestWorld: the Redis here is a Cluster of three masters.
describe('a worker on Redis Cluster', () => {
  useLeakCheck();
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function configFor(
    topology: ClusterTopology,
    env: Record<string, string> = {},
  ): Promise<WorkerConfig> {
    const dir = await mkdtemp(join(tmpdir(), 'stevedore-cluster-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const config = await clusterWorkerConfig(topology, { dir, queue: testQueue(), name: 'cluster', env });
    return { ...config, concurrency: 2 };
  }

  it('with a hash-tagged prefix runs jobs to completion, with results and live logs', async () => {
    const topology = await ClusterTopology.start();
    cleanup.push(() => topology.close());
    const config = await configFor(topology);
    expect(config.redisTopology).toMatchObject({ clusterNodes: expect.any(Array) });
    const worker = await startWorker(config, {
      logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    });
    cleanup.push(() => worker.close({ graceMs: 0 }));
    const redis = config.redisTopology as ClusterTarget;
    const client = new StevedoreClient({ redis, queue: config.queue, prefix: config.prefix });
    cleanup.push(() => client.close());

    const ok = await client.submit(busybox(['sh', '-c', 'echo one; echo two >&2; exit 0']));
    const failing = await client.submit(busybox(['sh', '-c', 'echo bad; exit 3']));
    const result = await client.waitForResult(ok.id, { timeoutMs: 30_000 });
    expect(result.exitCode).toBe(0);
    expect(result.stdout.tail).toBe('one\n');
    expect(result.stderr.tail).toBe('two\n');
    expect((await client.waitForResult(failing.id, { timeoutMs: 30_000 })).exitCode).toBe(3);

    // Live output of a running job, read while it runs, then to its end with follow.
    const slow = await client.submit(busybox(['sh', '-c', 'echo started; sleep 2; echo finished']));
    await untilRunning(client, slow.id);
    const chunks: Buffer[] = [];
    for await (const chunk of client.logs(slow.id, { follow: true })) chunks.push(chunk);
    expect(Buffer.concat(chunks).toString()).toBe('started\nfinished\n');
    expect((await client.getStatus(slow.id)).state).toBe('completed');

    // The CLI reads the same settings: a result through the Cluster, and the refusal without a hash tag.
    const env = { REDIS_CLUSTER_NODES: topology.nodeList, STEVEDORE_QUEUE: config.queue };
    const shown = await stevedore(['result', ok.id], { env: { ...env, STEVEDORE_PREFIX: config.prefix } });
    expect(shown.exitCode, String(shown.stderr)).toBe(0);
    expect(JSON.parse(String(shown.stdout))).toMatchObject({ exitCode: 0, stdout: { tail: 'one\n' } });
    const refused = await stevedore(['result', ok.id], { env });
    expect(refused.exitCode).not.toBe(0);
    expect(String(refused.stderr)).toMatch(
      /REDIS_CLUSTER_NODES is set, but the key prefix "bull" has no hash tag/,
    );
  }, 120_000);

  it('without a hash tag in the prefix refuses to start, and says why', async () => {
    const topology = await ClusterTopology.start();
    cleanup.push(() => topology.close());
    expect(() =>
      loadConfig({ REDIS_CLUSTER_NODES: topology.nodeList, STEVEDORE_PREFIX: 'stevedore' }),
    ).toThrow(ConfigError);
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: topology.nodeList })).toThrow(
      /has no hash tag.*\{stevedore\}/,
    );
    // A worker started from code, and a client, refuse the same way before they connect.
    const config = { ...(await configFor(topology)), prefix: 'bull' };
    await expect(startWorker(config, { logger: pino({ level: 'silent' }) })).rejects.toThrow(
      /Redis Cluster.*"bull" has no hash tag/,
    );
    const redis = config.redisTopology as ClusterTarget;
    expect(() => new StevedoreClient({ redis, queue: config.queue, prefix: 'bull' })).toThrow(
      /has no hash tag/,
    );
  }, 60_000);
});
