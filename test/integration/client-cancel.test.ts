import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { bullmqKeys, keys } from '../../src/jobs/keys.js';
import { TestRedis } from '../helpers/redis.js';
import { busybox, Harness } from '../helpers/stevedore.js';

describe('client cancel of a waiting job', () => {
  let redis: TestRedis;
  let raw: Redis;
  let h: Harness;

  beforeAll(async () => {
    redis = await TestRedis.start();
    raw = new Redis(redis.url);
  });
  afterAll(async () => {
    raw.disconnect();
    await redis.close();
  });
  beforeEach(() => {
    h = new Harness(redis);
  });
  afterEach(async () => {
    await h.close();
  });

  it('reports a removal that Redis refused, instead of taking it for a worker having the job', async () => {
    const client = h.client();
    const { id } = await client.submit(busybox(['true']), { delay: 60_000 });
    const address = { prefix: 'bull', queue: h.queue };
    // BullMQ's remove script reads the job's dependency set: a key of the wrong type makes
    // Redis answer it with an error (WRONGTYPE), the way a full or read-only Redis would.
    await raw.set(`${bullmqKeys.job(address, id)}:dependencies`, 'not a set');
    await expect(client.cancel(id)).rejects.toThrow(
      new RegExp(
        `cancelling job ${id}: removing it from the queue failed \\(.*WRONGTYPE.*\\).*run cancel again`,
      ),
    );
    expect(await client.getResult(id)).toBeNull();
    expect(await raw.exists(keys.result(address, id))).toBe(0);
    expect(await raw.exists(keys.cancel(address, id))).toBe(1);

    await raw.del(`${bullmqKeys.job(address, id)}:dependencies`);
    expect(await client.cancel(id)).toBe('cancelled');
    expect((await client.getResult(id))?.state).toBe('Cancelled');
  });
});
