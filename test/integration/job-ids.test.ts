import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { busybox, useTestWorld } from '../helpers/stevedore.js';

describe('job ids', () => {
  const world = useTestWorld();

  it('fails a job a foreign producer enqueued with an id the client refuses, as invalid', async () => {
    await world.h.worker();
    const client = world.h.client();
    // BullMQ itself lets these through: a three-part id with ':' and digits with a leading zero.
    const producer = new Queue(world.h.queue, { connection: { host: '127.0.0.1', port: world.redis.port } });
    try {
      for (const id of ['a:b:c', '007']) {
        await producer.add('run', busybox(['true']), { jobId: id, attempts: 3 });
        const result = await client.waitForResult(id, { timeoutMs: 20_000 });
        expect(result).toMatchObject({ jobId: id, state: 'Failed', reason: 'invalid', containerId: null });
        expect(result.error?.phase).toBe('validating');
        expect(result.error?.message).toContain(`job id ${JSON.stringify(id)} must not`);
        const job = await producer.getJob(id);
        expect(job?.attemptsMade).toBe(1); // never retried
      }
    } finally {
      await producer.close();
    }
  });

  it('gives a/b, a_b and .. log directories of their own', async () => {
    await world.h.worker();
    const client = world.h.client();
    const ids = ['a/b', 'a_b', '..', 'x'];
    for (const id of ids) await client.submit(busybox(['echo', `I am ${id}`]), { jobId: id });
    const results = await Promise.all(ids.map((id) => client.waitForResult(id, { timeoutMs: 30_000 })));
    const dirs = results.map((r) => dirname(r.stdout.path as string));
    expect(new Set(dirs).size).toBe(ids.length);
    for (const [i, result] of results.entries()) {
      expect(result.state).toBe('Complete');
      expect(await readFile(result.stdout.path as string, 'utf8')).toBe(`I am ${ids[i]}\n`);
      // <dir>/<queue>/<job id>/<attempt>: '..' must not climb out of the queue's directory.
      expect(dirname(dirname(dirs[i] as string))).toBe(dirname(dirname(dirs[3] as string)));
    }
  });
});
