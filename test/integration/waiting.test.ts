import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { StevedoreClient } from '../../src/jobs/client.js';
import { keys } from '../../src/jobs/keys.js';
import type { JobStatus } from '../../src/jobs/status.js';
import type { WaitingReason } from '../../src/jobs/waiting.js';
import { listWorkers } from '../../src/jobs/workers.js';
import { stevedore } from '../helpers/cli.js';
import { testDocker } from '../helpers/docker.js';
import { TestRegistry } from '../helpers/registry.js';
import { buildTestImage, pushImage, removeImage } from '../helpers/registry-images.js';
import { RegistryProxy } from '../helpers/registry-proxy.js';
import { silentRegistry } from '../helpers/silent-registry.js';
import { busybox, testPolicy, until, untilRunning, useTestWorld, writePolicy } from '../helpers/stevedore.js';

// Why a job waits, read at any moment from Redis: with no worker, behind busy workers, delayed,
// backing off after an infra failure, pulling its image; and the same words from `stevedore status`.
const world = useTestWorld();
const docker = testDocker();
const address = () => ({ prefix: 'bull', queue: world.h.queue });

/** Polls the job's status until its waiting reason is `reason` (and `also` holds); returns that status. */
async function untilWaiting(
  client: StevedoreClient,
  id: string,
  reason: WaitingReason,
  also: (s: JobStatus) => boolean = () => true,
  options: { staleMs?: number; timeoutMs?: number } = {},
): Promise<JobStatus> {
  let last: JobStatus | undefined;
  try {
    return await until(async () => {
      last = await client.getStatus(id, options);
      return last.waiting?.reason === reason && also(last) && last;
    }, options.timeoutMs);
  } catch (error) {
    throw new Error(`job ${id} never waited as ${reason}; last status: ${JSON.stringify(last)}`, {
      cause: error,
    });
  }
}

describe('worker presence', () => {
  it('lists a started worker with its capacity and running jobs, and forgets it on a clean close', async () => {
    const { h, raw } = world;
    // Left by workers that died long ago, and one nobody can read: a starting worker prunes them.
    const old = {
      id: 'dead',
      host: 'h',
      pid: 1,
      capacity: 1,
      running: [],
      startedAt: '',
      seenAt: new Date(Date.now() - 2 * 3_600_000).toISOString(),
    };
    await raw.hset(keys.workers(address()), 'dead', JSON.stringify(old), 'garbled', '{');
    const worker = await h.worker({ concurrency: 2 });
    expect(await raw.hkeys(keys.workers(address()))).toEqual([worker.id]);
    const started = await listWorkers(raw, address());
    expect(started.workers.map((w) => [w.id, w.capacity, w.running, w.pid])).toEqual([
      [worker.id, 2, [], process.pid],
    ]);
    expect(started.newestSeenAt).toBe(started.workers[0]?.seenAt);

    const client = h.client();
    const { id } = await client.submit(busybox(['sleep', '30']));
    await untilRunning(client, id);
    // A slot change is written at once, not at the next heartbeat.
    await until(async () => (await listWorkers(raw, address())).workers[0]?.running.includes(id));

    await worker.close({ graceMs: 0 });
    h.workers.splice(0);
    expect(await listWorkers(raw, address())).toEqual({ workers: [] });
  });
});

describe('waiting', () => {
  it('a job on a queue no worker serves says no-worker; a killed worker goes stale after the limit', async () => {
    const { h } = world;
    const client = h.client();
    const { id } = await client.submit(busybox(['true']));
    const none = await client.getStatus(id);
    expect(none).toMatchObject({ state: 'waiting', progress: null });
    expect(none.waiting).toMatchObject({
      reason: 'no-worker',
      ahead: 0,
      workers: { seen: 0, busySlots: 0, slots: 0 },
    });
    expect(none.waiting?.message).toBe(
      'next in line; no worker on this queue (none seen for 30 s): start one (stevedore worker)',
    );
    await client.cancel(id);

    // A worker killed with SIGKILL cannot delete its entry: it counts until it is older than the limit.
    const dir = await mkdtemp(join(tmpdir(), 'stevedore-waiting-'));
    try {
      const env = {
        REDIS_URL: world.redis.url,
        STEVEDORE_QUEUE: h.queue,
        STEVEDORE_STATE_DIR: dir,
        STEVEDORE_POLICY: await writePolicy(dir, testPolicy()),
        STEVEDORE_WORKER_ID: `killed-${process.pid}`,
      };
      const worker = stevedore(['worker'], { env });
      await until(async () => (await listWorkers(world.raw, address())).workers.length === 1, 30_000);
      worker.kill('SIGKILL');
      await worker;
      const { id: later } = await client.submit(busybox(['true']), { priority: 3 });
      const stale = await untilWaiting(client, later, 'no-worker', () => true, { staleMs: 1_000 });
      expect(stale.state).toBe('prioritized');
      expect(stale.waiting?.message).toMatch(
        /^next in line; no worker on this queue \(the last one was seen \d+ s ago, at \S+Z\): start one/,
      );
      // With the default 30 s limit the same entry still counts as a live worker with a free slot.
      expect((await client.getStatus(later)).waiting).toMatchObject({
        reason: 'queued',
        workers: { seen: 1 },
      });
      await client.cancel(later);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('behind one busy worker of capacity 1: workers-busy, behind 0, 1, and prioritized jobs after the plain ones', async () => {
    const { h } = world;
    await h.worker({ concurrency: 1 });
    const client = h.client();
    const { id: running } = await client.submit(busybox(['sleep', '60']));
    await untilRunning(client, running);
    const { id: second } = await client.submit(busybox(['true']));
    const { id: third } = await client.submit(busybox(['true']));
    const { id: low } = await client.submit(busybox(['true']), { priority: 5 });
    const { id: high } = await client.submit(busybox(['true']), { priority: 1 });

    const s2 = await untilWaiting(client, second, 'workers-busy');
    expect(s2.waiting).toMatchObject({ ahead: 0, workers: { seen: 1, busySlots: 1, slots: 1 } });
    expect(s2.waiting?.message).toBe('next in line; 1 worker, its one slot busy');
    const s3 = await client.getStatus(third);
    expect(s3.waiting).toMatchObject({ reason: 'workers-busy', ahead: 1 });
    expect(s3.waiting?.message).toBe('queued behind 1 job; 1 worker, its one slot busy');
    // BullMQ takes the plain wait list first, then the prioritized set by priority.
    expect((await client.getStatus(high)).waiting).toMatchObject({ reason: 'workers-busy', ahead: 2 });
    expect((await client.getStatus(low)).waiting).toMatchObject({ reason: 'workers-busy', ahead: 3 });
    // The running job does not wait.
    expect(await client.getStatus(running)).toMatchObject({ state: 'active', waiting: null });

    for (const id of [second, third, low, high]) expect(await client.cancel(id)).toBe('cancelled');
    await client.cancel(running);
    await client.waitForResult(running, { timeoutMs: 30_000 });
  });

  it('a delayed job says delayed until its time', async () => {
    const { h } = world;
    await h.worker();
    const client = h.client();
    const before = Date.now();
    const { id } = await client.submit(busybox(['true']), { delay: 120_000 });
    const after = Date.now();
    const { state, waiting } = await client.getStatus(id);
    expect(state).toBe('delayed');
    expect(waiting?.reason).toBe('delayed');
    const until = Date.parse(waiting?.until ?? '');
    expect(until).toBeGreaterThanOrEqual(before + 120_000);
    expect(until).toBeLessThanOrEqual(after + 120_000);
    // 120 s less the moments the test took: "in 2 min", or "in 119 s" on a slow machine.
    expect(waiting?.message).toMatch(
      new RegExp(`^delayed until ${waiting?.until} \\(in (2 min|1\\d\\d s)\\)$`),
    );
    expect(await client.cancel(id)).toBe('cancelled');
  });

  it('a job whose first attempt failed as infra says backoff, until when, and the error', async () => {
    const silent = await silentRegistry();
    try {
      const { h } = world;
      await h.worker({ pullStallMs: 1_000 });
      const client = h.client();
      const { id } = await client.submit(
        { image: `${silent.host}/hangs/app:1`, command: ['true'] },
        { attempts: 3, backoff: { type: 'fixed', delay: 120_000 } },
      );
      const { state, waiting, runs } = await untilWaiting(client, id, 'backoff');
      expect(state).toBe('delayed');
      expect(waiting?.lastError).toMatch(/made no progress for 1000 ms \(STEVEDORE_PULL_STALL_MS\)/);
      expect(Date.parse(waiting?.until ?? '')).toBeGreaterThan(Date.now() + 60_000);
      expect(waiting?.message).toMatch(
        /^backing off after run 1 failed: .*; run 2 at \S+Z \(in (2 min|1\d\d s)\)$/,
      );
      // `attempts: 3` is two reruns for infrastructure failures; run 1's spent one.
      expect(runs.message).toBe(
        "run 2 next; reruns left: none from limit (the job's own failures), 1 of 2 from infra (infrastructure failures)",
      );
      expect(await client.cancel(id)).toBe('cancelled');
    } finally {
      await silent.close();
    }
  });

  it('a job pulling its image through a slow registry says pulling, with the bytes', async () => {
    const registry = await TestRegistry.start();
    const local = 'stevedore-test/waiting-pull:1';
    const imageId = await buildTestImage(docker, local, {
      variant: 'waiting-pull',
      randomBytes: 6 * 1024 * 1024,
    });
    await pushImage(docker, local, registry.ref('waiting/pull', '1'));
    await removeImage(docker, imageId);
    // About 6 s for the data layer: several progress writes to catch.
    const proxy = await RegistryProxy.start(registry.port, { bytesPerSecond: 1024 * 1024 });
    try {
      const { h } = world;
      await h.worker();
      const client = h.client();
      const image = `${proxy.host}/waiting/pull:1`;
      const { id } = await client.submit({ image, command: ['true'] });
      const { state, waiting } = await untilWaiting(
        client,
        id,
        'pulling',
        (s) => (s.waiting?.pull?.bytes ?? 0) > 1_000_000,
        {
          timeoutMs: 30_000,
        },
      );
      expect(state).toBe('active');
      expect(waiting?.pull).toMatchObject({ image });
      expect(waiting?.message).toMatch(
        /^pulling image 127\.0\.0\.1:\d+\/waiting\/pull:1: [\d.]+ MB of [\d.]+ MB so far, \d+ of \d+ layers$/,
      );
      expect(await client.waitForResult(id, { timeoutMs: 60_000 })).toMatchObject({ state: 'Complete' });
      expect((await client.getStatus(id)).waiting).toBeNull();
    } finally {
      await proxy.close();
      await registry.close();
      await removeImage(docker, imageId);
    }
  });

  it('stevedore status prints its run and why it waits in words on stderr, and the waiting field in its JSON', async () => {
    const { h } = world;
    const client = h.client();
    const { id } = await client.submit(busybox(['true']));
    const cli = await stevedore(['status', id], {
      env: { REDIS_URL: world.redis.url, STEVEDORE_QUEUE: h.queue },
    });
    expect(cli.exitCode).toBe(0);
    const status = JSON.parse(String(cli.stdout)) as { finished: boolean; waiting: JobStatus['waiting'] };
    expect(status.finished).toBe(false);
    expect(status.waiting).toMatchObject({ reason: 'no-worker', ahead: 0 });
    expect(String(cli.stderr)).toBe(
      `job ${id}: run 1 next; reruns left: none from limit (the job's own failures), 2 of 2 from infra (infrastructure failures)\n` +
        `job ${id} waits: next in line; no worker on this queue (none seen for 30 s): start one (stevedore worker)`,
    );
    await client.cancel(id);
  });
});
