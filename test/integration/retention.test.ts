import { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { UnknownJobError } from '../../src/jobs/errors.js';
import { keys } from '../../src/jobs/keys.js';
import { busybox, until, useTestWorld } from '../helpers/stevedore.js';

describe('finished jobs kept by count', () => {
  const world = useTestWorld();

  it('keeps the newest STEVEDORE_KEEP_FINISHED of each kind, with their side keys, and drops the rest', async () => {
    await world.h.worker({ keepFinished: 2, concurrency: 1 });
    const client = world.h.client();
    const address = { prefix: 'bull', queue: world.h.queue };
    const sideKeys = (id: string): string[] => [
      keys.output(address, id, 'stdout'),
      keys.output(address, id, 'events'),
      keys.result(address, id),
    ];
    const completed: string[] = [];
    for (let i = 0; i < 3; i++) {
      // More than the result's tail, so the live copy is kept after the job finished.
      const { id } = await client.submit(busybox(['sh', '-c', `head -c 5000 /dev/zero | tr '\\0' ${i}`]));
      await client.waitForResult(id, { timeoutMs: 30_000 });
      completed.push(id);
    }
    // The client refuses an invalid spec: enqueue them as a foreign producer would.
    const producer = new Queue(world.h.queue, { connection: { host: '127.0.0.1', port: world.redis.port } });
    const failed = ['bad-0', 'bad-1', 'bad-2'];
    try {
      for (const id of failed) {
        await producer.add('run', { image: '' }, { jobId: id });
        expect((await client.waitForResult(id, { timeoutMs: 30_000 })).reason).toBe('invalid');
      }
    } finally {
      await producer.close();
    }
    const [oldest, ...newest] = completed;
    await expect(client.getResult(oldest as string)).rejects.toThrow(UnknownJobError);
    // Trimmed right after BullMQ stored the newest job's result, off the job's path.
    await until(async () => (await world.raw.exists(...sideKeys(oldest as string))) === 0, 5_000);
    for (const id of newest) {
      expect((await client.getResult(id))?.state).toBe('Complete');
      expect(await world.raw.exists(keys.output(address, id, 'stdout'))).toBe(1);
    }
    const [oldestFailed, ...newestFailed] = failed;
    await expect(client.getResult(oldestFailed as string)).rejects.toThrow(UnknownJobError);
    for (const id of newestFailed) expect((await client.getResult(id))?.reason).toBe('invalid');
  });
});
