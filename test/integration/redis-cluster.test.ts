import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { loadConfig, type WorkerConfig } from '../../src/config/worker.js';
import { StevedoreClient } from '../../src/jobs/client.js';
import type { ClusterTarget } from '../../src/jobs/connection.js';
import { labelFilters } from '../../src/jobs/names.js';
import { startWorker } from '../../src/worker/worker.js';
import { stevedore } from '../helpers/cli.js';
import { testDocker } from '../helpers/docker.js';
import { useLeakCheck } from '../helpers/leaks.js';
import { ClusterTopology, clusterWorkerConfig } from '../helpers/redis-cluster-topology.js';
import { busybox, testQueue, until, untilRunning } from '../helpers/stevedore.js';

/** The bound (#25): after a failover, workers take jobs again within this long, with no restart. */
const RECOVERY_MS = 10_000;

// Its own set-up, not useTestWorld: the Redis here is a Cluster of three masters (and their replicas).
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

  it("lives through a failover of the master serving the queue's slot: jobs again within 10 s, no restart, none lost or run twice", async () => {
    const topology = await ClusterTopology.start({ masters: 3, replicasPerMaster: 1 });
    cleanup.push(() => topology.close());
    // Longer than the failover (about 4 s), so the job running across it keeps its lock.
    const config = { ...(await configFor(topology)), lockDurationMs: 10_000 };
    const worker = await startWorker(config, {
      logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    });
    cleanup.push(() => worker.close({ graceMs: 0 }));
    const client = new StevedoreClient({
      redis: config.redisTopology as ClusterTarget,
      queue: config.queue,
      prefix: config.prefix,
    });
    cleanup.push(() => client.close());
    // Every run of every job leaves a line here: a job run twice would leave two.
    const runs = await mkdtemp(join(tmpdir(), 'stevedore-cluster-runs-'));
    cleanup.push(() => rm(runs, { recursive: true, force: true }));
    const job = (name: string, then = 'true') =>
      busybox(['sh', '-c', `echo ${name} >> /runs/log; ${then}; echo ${name}`], {
        mounts: { '/runs': { hostPath: runs, readOnly: false } },
      });
    const submitted = new Map<string, string>();
    const submit = async (name: string, then?: string) =>
      submitted.set(name, (await client.submit(job(name, then))).id).get(name) ?? '';

    for (const name of ['before-0', 'before-1']) {
      const id = await submit(name);
      expect((await client.waitForResult(id, { timeoutMs: 30_000 })).stdout.tail).toBe(`${name}\n`);
    }
    // Running when the master goes, and ending while its slot has no master: its result waits for one.
    await untilRunning(client, await submit('across', 'until [ -e /runs/go ]; do sleep 0.1; done'));

    const kill = await topology.killMasterOf(config.prefix);
    await writeFile(join(runs, 'go'), '');
    // A submit while the slot has no master waits for the promotion, as through Sentinel.
    const during = submit('during');
    during.catch(() => undefined); // awaited below, after the promotion
    const promotion = await topology.untilPromoted(kill, config.prefix);
    await during;

    // Submitted after the promotion; each must finish within the bound, measured from it.
    const after = ['after-0', 'after-1', 'after-2'];
    for (const name of after) await submit(name);
    const finished: number[] = [];
    for (const name of after) {
      const id = submitted.get(name) ?? '';
      const left = Math.max(1, promotion.promotedAt + RECOVERY_MS - Date.now());
      const result = await client.waitForResult(id, { timeoutMs: left }).catch((error: unknown) => {
        throw new Error(
          `job ${name} (${id}), submitted after the failover, had no result ${RECOVERY_MS} ms after the promotion (the worker stopped taking jobs?): ${String(error)}`,
        );
      });
      expect(result.stdout.tail).toBe(`${name}\n`);
      finished.push(Date.now());
    }

    // Every job: one result, from its first and only run, by the worker that was never restarted.
    for (const [name, id] of submitted) {
      const result = await client.waitForResult(id, { timeoutMs: 30_000 });
      expect(result, name).toMatchObject({ state: 'Complete', exitCode: 0, attempt: 1 });
      expect(result.stdout.tail, name).toBe(`${name}\n`);
      expect(result.attempts, name).toHaveLength(1);
      expect(result.worker?.id, name).toBe(config.workerId);
    }
    const lines = (await readFile(join(runs, 'log'), 'utf8')).split('\n').filter(Boolean);
    expect(lines.sort()).toEqual([...submitted.keys()].sort());
    // And each container went once its result was stored.
    await until(
      async () =>
        (await testDocker().listContainers({ all: true, filters: { label: labelFilters(config.queue) } }))
          .length === 0,
    );
    console.info(
      `cluster failover: replica promoted ${promotion.promotedAt - kill.killedAt} ms after the kill (every node agreed after ${promotion.agreedAt - kill.killedAt} ms); the first job after it done ${(finished[0] ?? 0) - promotion.promotedAt} ms after the promotion, all 3 after ${(finished.at(-1) ?? 0) - promotion.promotedAt} ms`,
    );
  }, 60_000);

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
