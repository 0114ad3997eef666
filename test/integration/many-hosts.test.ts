import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StevedoreClient } from '../../src/jobs/client.js';
import { DEFAULT_PREFIX } from '../../src/jobs/keys.js';
import { LABELS } from '../../src/jobs/names.js';
import type { JobResult } from '../../src/jobs/result.js';
import { listWorkers } from '../../src/jobs/workers.js';
import { watchCreates } from '../helpers/events.js';
import { TestHost } from '../helpers/host-rig.js';
import { checkLeaks, type LeakBaseline, leakBaseline } from '../helpers/leaks.js';
import { TestRedis } from '../helpers/redis.js';
import { busybox, testPolicy, testQueue, until, untilRunning, writePolicy } from '../helpers/stevedore.js';

const HOSTS = 3;
/** Short, so a dead worker's job is taken again within seconds. */
const LOCK_MS = 3_000;
/**
 * A dead host's jobs run elsewhere 20 s after its last heartbeat. Not the shortest allowed (10 s):
 * the SIGKILL case waits two locks (6 s) before its worker starts again, and a worker starting on
 * a loaded machine took more than the 4 s that left, so another host counted it dead and ran its
 * job (adopted: false, seen once under six parallel suites).
 */
const HOST_DEAD_MS = 20_000;

/** `lines` numbered lines, one every `delay` seconds: the expected stdout is known byte for byte. */
const counting = (lines: number, delay: string) =>
  busybox(['sh', '-c', `i=1; while [ $i -le ${lines} ]; do echo line-$i; i=$((i+1)); sleep ${delay}; done`], {
    stopGraceSeconds: 0,
  });
const countedOutput = (lines: number) => Array.from({ length: lines }, (_, i) => `line-${i + 1}\n`).join('');

const hostOf = (result: JobResult): string => result.worker?.id.replace(/-\d+$/, '') ?? 'none';

/**
 * The many-hosts rig (issue #25): K "hosts" on this machine, each a private dockerd (own data
 * root, exec root, containerd, socket and bridge) with a worker process bound to it, sharing one
 * Redis and one queue. Its own set-up, not useTestWorld: its engines and workers live for the file.
 */
describe('many hosts: one Redis, an engine and a worker per host', () => {
  let redis: TestRedis;
  let raw: Redis;
  let dir: string;
  let client: StevedoreClient;
  let baseline: LeakBaseline;
  const queue = testQueue();
  const hosts: TestHost[] = [];

  const liveWorkers = async () =>
    (await listWorkers(raw, { prefix: DEFAULT_PREFIX, queue }, { staleMs: HOST_DEAD_MS })).workers;
  /** The host whose engine holds the job's container now. */
  const holderOf = async (jobId: string): Promise<TestHost | undefined> => {
    for (const host of hosts) {
      const found = await host.engine.docker
        .listContainers({ all: true, filters: { label: [`${LABELS.jobId}=${jobId}`] } })
        .catch(() => []);
      if (found.length > 0) return host;
    }
    return undefined;
  };

  beforeAll(async () => {
    baseline = await leakBaseline();
    redis = await TestRedis.start();
    raw = new Redis(redis.url);
    raw.on('error', () => undefined); // a failed command rejects; the event adds nothing
    dir = await mkdtemp(join(tmpdir(), 'stevedore-many-hosts-'));
    const shared = {
      redisUrl: redis.url,
      queue,
      policyPath: await writePolicy(dir, testPolicy()),
      dir,
      lockDurationMs: LOCK_MS,
    };
    for (let i = 1; i <= HOSTS; i++) hosts.push(await TestHost.start(i, shared));
    for (const host of hosts) host.startWorker({ STEVEDORE_HOST_DEAD_MS: String(HOST_DEAD_MS) });
    await until(async () => (await liveWorkers()).length === HOSTS, 60_000);
    client = new StevedoreClient({ redis: redis.url, queue });
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    for (const host of hosts) await host.close();
    raw?.disconnect();
    await redis?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    if (baseline) await checkLeaks(baseline, 'the test file');
  }, 120_000);

  it('spreads jobs over every host, each worker on its own engine', async () => {
    const ids = await Promise.all(
      Array.from(
        { length: 12 },
        async () => (await client.submit(busybox(['sh', '-c', 'sleep 2; echo done']))).id,
      ),
    );
    const results = await Promise.all(ids.map((id) => client.waitForResult(id, { timeoutMs: 90_000 })));
    for (const result of results) expect(result).toMatchObject({ state: 'Complete', exitCode: 0 });
    const shares = new Map<string, number>();
    for (const result of results) shares.set(hostOf(result), (shares.get(hostOf(result)) ?? 0) + 1);
    expect([...shares.keys()].sort()).toEqual(['host-1', 'host-2', 'host-3']);
    // Each worker told the engine it runs on, and no two share one.
    const engines = new Set((await liveWorkers()).map((w) => w.engine));
    expect(engines.size).toBe(HOSTS);
  }, 120_000);

  it("a SIGKILLed worker's running job is adopted by the next worker on the same host, never run on another", async () => {
    const creates = await Promise.all(
      hosts.map((host) => watchCreates(host.engine.docker, [`stevedore.queue=${queue}`])),
    );
    const { id } = await client.submit(counting(60, '0.1'));
    await untilRunning(client, id, 30_000);
    const host = await holderOf(id);
    if (!host) throw new Error(`job ${id} runs, but no host's engine holds its container`);
    await host.killWorker();
    // The other hosts' workers see the job when its lock expires; they must leave it to this host.
    await new Promise((r) => setTimeout(r, LOCK_MS * 2));
    host.startWorker({ STEVEDORE_HOST_DEAD_MS: String(HOST_DEAD_MS) });
    const result = await client.waitForResult(id, { timeoutMs: 60_000 });
    expect(result).toMatchObject({ state: 'Complete', exitCode: 0, adopted: true });
    expect(result.worker?.id).toBe(host.workerId);
    expect(await readFile(result.stdout.path as string, 'utf8')).toBe(countedOutput(60));
    const made = await Promise.all(creates.map((c) => c.stop()));
    expect(made.flat()).toHaveLength(1);
  }, 120_000);

  it('a whole host dies: its jobs run again on another host, once each, byte-exact; back, it removes its old containers and writes no result', async () => {
    const ids = await Promise.all(
      Array.from({ length: 6 }, async () => (await client.submit(counting(40, '0.1'))).id),
    );
    for (const id of ids) await untilRunning(client, id, 30_000);
    const holders = await Promise.all(ids.map(holderOf));
    const doomed = hosts.find((host) => holders.includes(host));
    if (!doomed) throw new Error('no host holds any of the running jobs');
    const onDoomed = ids.filter((_, i) => holders[i] === doomed);
    await doomed.die();

    const results = await Promise.all(ids.map((id) => client.waitForResult(id, { timeoutMs: 120_000 })));
    for (const result of results) {
      expect(result, JSON.stringify(result.error)).toMatchObject({ state: 'Complete', exitCode: 0 });
      expect(await readFile(result.stdout.path as string, 'utf8')).toBe(countedOutput(40));
    }
    for (const result of results.filter((r) => onDoomed.includes(r.jobId))) {
      expect(hostOf(result)).not.toBe(`host-${doomed.index}`);
      // The lost run is in the history, before the run that gave the result.
      expect(result.attempts.length).toBeGreaterThanOrEqual(2);
    }

    // The host comes back: its engine still lists the dead run's containers until its worker reconciles.
    const before = await Promise.all(ids.map((id) => client.getResult(id)));
    await doomed.comeBack();
    await until(async () => {
      const left = await doomed.engine.docker.listContainers({
        all: true,
        filters: { label: [`stevedore.queue=${queue}`] },
      });
      return left.filter((c) => c.Labels[LABELS.jobId] !== undefined).length === 0;
    }, 60_000);
    expect(await Promise.all(ids.map((id) => client.getResult(id)))).toEqual(before);
  }, 240_000);
});
