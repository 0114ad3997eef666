import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { StevedoreClient } from '../../src/jobs/client.js';
import { DEFAULT_PREFIX, keys } from '../../src/jobs/keys.js';
import { labelFilters } from '../../src/jobs/names.js';
import { testDocker } from '../helpers/docker.js';
import { watchCreates } from '../helpers/events.js';
import { busybox, untilRunning, useTestWorld } from '../helpers/stevedore.js';

describe('job control', () => {
  const world = useTestWorld();

  it('cancels a waiting job: removed, result Cancelled, no container', async () => {
    const client = world.h.client();
    const creates = await watchCreates(testDocker(), labelFilters(world.h.queue));
    const { id } = await client.submit(busybox(['true']), { delay: 60_000 });
    expect(await client.getResult(id)).toBeNull();
    expect(await client.cancel(id)).toBe('cancelled');
    const result = await client.waitForResult(id, { timeoutMs: 5_000 });
    expect(result).toMatchObject({
      state: 'Cancelled',
      reason: 'cancelled',
      exitCode: null,
      containerId: null,
    });
    await world.h.worker();
    // Make it due now, as if its delay had passed, then run a probe job behind it: once the probe
    // is done the worker has had its chance at the cancelled one (a 300 ms pause proved nothing).
    const connection = new Redis(world.redis.url, { maxRetriesPerRequest: null });
    const queue = new Queue(world.h.queue, { connection, prefix: DEFAULT_PREFIX });
    await queue.promoteJobs();
    await queue.close();
    await connection.quit();
    const { id: probe } = await client.submit(busybox(['true']));
    const probeResult = await client.waitForResult(probe, { timeoutMs: 20_000 });
    expect(await creates.stop()).toEqual([probeResult.containerId]);
  });

  it('cancels an active job from another process within 2 s', async () => {
    await world.h.worker();
    const client = world.h.client();
    const { id } = await client.submit(
      busybox(['sh', '-c', 'trap "exit 143" TERM; echo started; while true; do sleep 0.1; done'], {
        stopGraceSeconds: 5,
      }),
    );
    await untilRunning(client, id);
    const canceller = new StevedoreClient({ redis: world.redis.url, queue: world.h.queue });
    const t0 = Date.now();
    try {
      expect(await canceller.cancel(id)).toBe('cancelling');
    } finally {
      await canceller.close();
    }
    const result = await client.waitForResult(id, { timeoutMs: 10_000 });
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(result).toMatchObject({
      state: 'Cancelled',
      reason: 'cancelled',
      oomKilled: false,
      exitCode: 143,
      signal: 'SIGTERM',
    });
    expect(result.stdout.tail).toBe('started\n');
    expect(result.phases).toHaveProperty('stopping');
  });

  it('a job whose cancel is recorded before a worker takes it never starts a container', async () => {
    const client = world.h.client();
    const creates = await watchCreates(testDocker(), labelFilters(world.h.queue));
    const { id } = await client.submit(busybox(['sh', '-c', 'echo should-not-run']));
    // The durable flag is what cancel() records first; a worker that takes the job checks it
    // before creating and again before starting the container.
    const raw = new Redis(world.redis.url);
    await raw.set(keys.cancel({ prefix: 'bull', queue: world.h.queue }, id), '1');
    await raw.quit();
    await world.h.worker();
    const result = await client.waitForResult(id, { timeoutMs: 10_000 });
    expect(result).toMatchObject({
      state: 'Cancelled',
      reason: 'cancelled',
      exitCode: null,
      containerId: null,
    });
    expect(await creates.stop()).toEqual([]);
  });

  it('cancel racing the start: whichever wins, no output and a Cancelled result', async () => {
    await world.h.worker();
    const client = world.h.client();
    for (let i = 0; i < 5; i++) {
      const { id } = await client.submit(
        busybox(['sh', '-c', 'sleep 2; echo finished'], { stopGraceSeconds: 0 }),
      );
      await new Promise((r) => setTimeout(r, i * 40));
      await client.cancel(id);
      const result = await client.waitForResult(id, { timeoutMs: 15_000 });
      expect(result.state).toBe('Cancelled');
      expect(result.stdout.tail).toBe('');
    }
  });

  it('stops a job at its max run time: Cancelled, reason timeout', async () => {
    await world.h.worker();
    const client = world.h.client();
    const { id } = await client.submit(
      // Without an init, sleep (PID 1) ignores SIGTERM, so the grace ends in our SIGKILL. The max
      // run time counts from admission: 1 s ran out while creating (1.5 s at load 14 on 2 cores).
      busybox(['sleep', '30'], { maxRunTimeSeconds: 3, stopGraceSeconds: 0.2, init: false }),
    );
    const result = await client.waitForResult(id, { timeoutMs: 15_000 });
    // Our own SIGKILL after the grace period is a timeout, never an oom.
    expect(result).toMatchObject({
      state: 'Cancelled',
      reason: 'timeout',
      exitCode: 137,
      signal: 'SIGKILL',
      oomKilled: false,
      // The old name stays the name the result gives it.
      timeout: { field: 'maxRunTimeSeconds', name: 'runSeconds', seconds: 3 },
    });
  });

  it('a max run time that runs out before the container starts means it never starts', async () => {
    await world.h.worker();
    const client = world.h.client();
    // 1 ms: over before the engine has even created the container.
    const { id } = await client.submit(busybox(['echo', 'ran'], { maxRunTimeSeconds: 0.001 }));
    const result = await client.waitForResult(id, { timeoutMs: 15_000 });
    expect(result).toMatchObject({ state: 'Cancelled', reason: 'timeout', exitCode: null, startedAt: null });
    expect(result.stdout.bytes).toBe(0);
  });

  it('graceful shutdown puts a running job back without spending an attempt; a second worker completes it', async () => {
    const first = await world.h.worker({ shutdownGraceMs: 300 });
    const client = world.h.client();
    const { id } = await client.submit(
      busybox(['sh', '-c', 'if [ -f /tmp/x ]; then :; fi; echo run; sleep 2; echo done'], {
        stopGraceSeconds: 0,
      }),
      { attempts: 1 },
    );
    await untilRunning(client, id);
    await first.close();
    expect(await client.getResult(id)).toBeNull();
    const second = await world.h.worker();
    const result = await client.waitForResult(id, { timeoutMs: 20_000 });
    expect(result).toMatchObject({ state: 'Complete', exitCode: 0, attempt: 1 });
    expect(result.stdout.tail).toBe('run\ndone\n');
    expect(result.worker?.id).toBe(second.id);
  });

  it('two workers on one queue run each of 50 jobs exactly once', async () => {
    const since = Date.now();
    const creates = await watchCreates(testDocker(), labelFilters(world.h.queue));
    await world.h.worker({ concurrency: 2 });
    await world.h.worker({ concurrency: 2 });
    const client = world.h.client();
    const ids = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        client.submit(busybox(['echo', `job-${i}`]), { jobId: `job-${i}-${since}` }),
      ),
    );
    const results = await Promise.all(ids.map(({ id }) => client.waitForResult(id, { timeoutMs: 120_000 })));
    results.forEach((r, i) => {
      expect(r).toMatchObject({ state: 'Complete', exitCode: 0, attempt: 1 });
      expect(r.stdout.tail).toBe(`job-${i}\n`);
    });
    expect(await creates.stop()).toHaveLength(50);
    const workersUsed = new Set(results.map((r) => r.worker?.id));
    expect(workersUsed.size).toBe(2);
  });

  it('a result outlives the worker that wrote it', async () => {
    const worker = await world.h.worker();
    const client = world.h.client();
    const { id } = await client.submit(busybox(['sh', '-c', 'echo kept; exit 3']));
    const result = await client.waitForResult(id, { timeoutMs: 15_000 });
    await worker.close();
    await world.redis.restart();
    const later = new StevedoreClient({ redis: world.redis.url, queue: world.h.queue });
    try {
      expect(await later.getResult(id)).toEqual(result);
      await expect(later.getResult('no-such-job')).rejects.toThrow(/unknown job "no-such-job"/);
    } finally {
      await later.close();
    }
  });
});
