import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { StevedoreClient } from '../../src/jobs/client.js';
import type { SentinelTarget } from '../../src/jobs/connection.js';
import { ReplicationError } from '../../src/jobs/errors.js';
import { bullmqKeys, DEFAULT_PREFIX } from '../../src/jobs/keys.js';
import { labelFilters } from '../../src/jobs/names.js';
import { startWorker } from '../../src/worker/worker.js';
import { testDocker } from '../helpers/docker.js';
import { useLeakCheck } from '../helpers/leaks.js';
import { ClusterTopology, clusterWorkerConfig } from '../helpers/redis-cluster-topology.js';
import { SentinelTopology, sentinelWorkerConfig } from '../helpers/redis-topology.js';
import { busybox, testQueue, until, useTestWorld } from '../helpers/stevedore.js';

const run = promisify(execFile);
const DURABLE = { replicas: 1, timeoutMs: 2_000 };

// Its own set-up, not useTestWorld: the Redis here is a master, a replica and three sentinels.
describe('WAIT for a replica, with one there', () => {
  useLeakCheck();
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it('a durable submit returns once the replica has the job; a worker waiting for results runs it as usual', async () => {
    const topology = await SentinelTopology.start();
    cleanup.push(() => topology.close());
    const dir = await mkdtemp(join(tmpdir(), 'stevedore-durability-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const queue = testQueue();
    const config = await sentinelWorkerConfig(topology, {
      dir,
      queue,
      name: 'durability',
      env: { STEVEDORE_RESULT_REPLICAS: '1', STEVEDORE_RESULT_REPLICAS_TIMEOUT_MS: '2000' },
    });
    expect(config.resultDurability).toEqual(DURABLE);
    const client = new StevedoreClient({
      redis: config.redisTopology as SentinelTarget,
      queue,
      durability: DURABLE,
    });
    cleanup.push(() => client.close());
    const { id } = await client.submit(busybox(['echo', 'kept twice']));
    // Confirmed: the replica holds the job now, not merely soon.
    const master = await topology.masterPort();
    const replica = topology.nodes.find((n) => n.port !== master);
    const key = bullmqKeys.job({ prefix: DEFAULT_PREFIX, queue }, id);
    const onReplica = await run('redis-cli', ['-p', String(replica?.port), 'EXISTS', key]);
    expect(onReplica.stdout.trim()).toBe('1');

    const worker = await startWorker(config, {
      logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    });
    cleanup.push(() => worker.close({ graceMs: 0 }));
    expect((await client.waitForResult(id, { timeoutMs: 30_000 })).stdout.tail).toBe('kept twice\n');
    // Confirmed on the replica, the container goes as usual.
    await until(
      async () =>
        (await testDocker().listContainers({ all: true, filters: { label: labelFilters(queue) } })).length ===
        0,
    );
  });
  it("on a Cluster the WAIT goes to the node of the queue's slot, whose replica confirms the submit and the result", async () => {
    const topology = await ClusterTopology.start({ masters: 3, replicasPerMaster: 1 });
    cleanup.push(() => topology.close());
    const dir = await mkdtemp(join(tmpdir(), 'stevedore-durability-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const queue = testQueue();
    const config = {
      ...(await clusterWorkerConfig(topology, {
        dir,
        queue,
        name: 'durability',
        env: { STEVEDORE_RESULT_REPLICAS: '1', STEVEDORE_RESULT_REPLICAS_TIMEOUT_MS: '2000' },
      })),
      // Reconciling (at start, then every 4 lock durations) would remove an unconfirmed result's
      // container too; with a long lock, only a confirmed result removes it within the test.
      lockDurationMs: 30_000,
    };
    expect(config.resultDurability).toEqual(DURABLE);
    const durable = (timeoutMs: number) => {
      const client = new StevedoreClient({
        redis: topology.target,
        prefix: config.prefix,
        queue,
        durability: { replicas: 1, timeoutMs },
      });
      cleanup.push(() => client.close());
      return client;
    };
    const client = durable(DURABLE.timeoutMs);
    const master = await topology.masterOf(config.prefix);
    const [replica] = await topology.replicasOf(master);
    if (!replica) throw new Error(`the master of ${config.prefix} has no replica`);
    // A Cluster replica serves reads of its master's slots on a READONLY connection.
    const onReplica = new Redis({ host: '127.0.0.1', port: replica.port, readOnly: true });
    cleanup.push(async () => {
      await onReplica.quit();
    });
    const address = { prefix: config.prefix, queue };

    const { id } = await client.submit(busybox(['echo', 'kept twice']));
    // Confirmed: the replica holds the job now, not merely soon.
    expect(await onReplica.exists(bullmqKeys.job(address, id))).toBe(1);

    // The other masters' replicas are up; only the slot's own replica can answer this WAIT.
    replica.pause();
    const unconfirmed = await durable(300)
      .submit(busybox(['echo', 'only on the master']), { jobId: 'unconfirmed' })
      .catch((e: unknown) => e)
      .finally(() => replica.resume());
    expect(unconfirmed).toBeInstanceOf(ReplicationError);
    expect(unconfirmed).toMatchObject({ acknowledged: 0, wanted: 1 });

    const worker = await startWorker(config, {
      logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    });
    cleanup.push(() => worker.close({ graceMs: 0 }));
    let reconciled = 0;
    worker.events.on('reconciled', ({ count }) => {
      reconciled += count;
    });
    expect((await client.waitForResult(id, { timeoutMs: 30_000 })).stdout.tail).toBe('kept twice\n');
    expect((await client.waitForResult('unconfirmed', { timeoutMs: 30_000 })).exitCode).toBe(0);
    // Confirmed by the replica, each container goes at once, not by reconciling.
    await until(
      async () =>
        (await testDocker().listContainers({ all: true, filters: { label: labelFilters(queue) } })).length ===
        0,
    );
    expect(reconciled).toBe(0);
    expect(await onReplica.hget(bullmqKeys.job(address, id), 'returnvalue')).toContain('kept twice');
  });
});

describe('WAIT for a replica, with none there', () => {
  const world = useTestWorld();

  it('a durable submit throws a ReplicationError naming what was not confirmed; the job exists on the master', async () => {
    const client = new StevedoreClient({
      redis: world.redis.url,
      queue: world.h.queue,
      durability: { replicas: 1, timeoutMs: 200 },
    });
    world.h.clients.push(client);
    const error = await client.submit(busybox(['true']), { jobId: 'durable-1' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ReplicationError);
    expect(error).toMatchObject({ acknowledged: 0, wanted: 1 });
    expect(String(error)).toMatch(
      /submitting job durable-1: the master took it, but 0 of the 1 replica asked for \(durability\.replicas\) confirmed it within 200 ms \(durability\.timeoutMs\); the job exists on the master and may run/,
    );
    expect((await client.getStatus('durable-1')).state).toBe('waiting');
    // A durability that cannot work is refused before anything connects.
    expect(
      () => new StevedoreClient({ redis: world.redis.url, durability: { replicas: 1, timeoutMs: 0 } }),
    ).toThrow(/durability\.timeoutMs is 0: give whole milliseconds ≥ 1/);
  });

  it("on a Cluster the WAIT goes to the node of the queue's slot: a Cluster of masters only confirms none", async () => {
    const topology = await ClusterTopology.start();
    try {
      const client = new StevedoreClient({
        redis: { clusterNodes: topology.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })) },
        prefix: '{stevedore}',
        queue: world.h.queue,
        durability: { replicas: 1, timeoutMs: 200 },
      });
      world.h.clients.push(client);
      await expect(client.submit(busybox(['true']), { jobId: 'durable-cluster' })).rejects.toThrow(
        /submitting job durable-cluster: the master took it, but 0 of the 1 replica asked for/,
      );
      expect((await client.getStatus('durable-cluster')).state).toBe('waiting');
      await client.close();
      world.h.clients.splice(world.h.clients.indexOf(client), 1);
    } finally {
      await topology.close();
    }
  });

  it('a worker whose result is not confirmed keeps the container for reconciling, which removes it later', async () => {
    const { h } = world;
    // Reconciling runs every 4 lock durations and spares containers younger than one.
    await h.worker({ lockDurationMs: 2_000, resultDurability: { replicas: 1, timeoutMs: 200 } });
    const client = h.client();
    const { id } = await client.submit(busybox(['echo', 'only on the master']));
    expect((await client.waitForResult(id, { timeoutMs: 30_000 })).stdout.tail).toBe('only on the master\n');
    const containers = () =>
      testDocker().listContainers({ all: true, filters: { label: labelFilters(h.queue) } });
    // The WAIT answers 0 after its 200 ms; the container is then left, not removed.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await containers()).toHaveLength(1);
    await until(async () => (await containers()).length === 0, 30_000);
  });
});
