import { describe, expect, it } from 'vitest';
import { listWorkers } from '../../src/jobs/workers.js';
import { busybox, until, untilRunning, useTestWorld } from '../helpers/stevedore.js';

const world = useTestWorld();

describe('worker presence', () => {
  it('lists a started worker with its capacity and running jobs, and forgets it on a clean close', async () => {
    const { h, raw } = world;
    const address = { prefix: 'bull', queue: h.queue };
    const worker = await h.worker({ concurrency: 2 });
    const started = await listWorkers(raw, address);
    expect(started.workers.map((w) => [w.id, w.capacity, w.running, w.pid])).toEqual([
      [worker.id, 2, [], process.pid],
    ]);
    expect(started.newestSeenAt).toBe(started.workers[0]?.seenAt);

    const client = h.client();
    const { id } = await client.submit(busybox(['sleep', '30']));
    await untilRunning(client, id);
    // A slot change is written at once, not at the next heartbeat.
    await until(async () => (await listWorkers(raw, address)).workers[0]?.running.includes(id));

    await worker.close({ graceMs: 0 });
    h.workers.splice(0);
    expect(await listWorkers(raw, address)).toEqual({ workers: [] });
  });
});
