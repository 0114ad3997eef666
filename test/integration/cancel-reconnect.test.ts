import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { keys } from '../../src/jobs/keys.js';
import { TestRedis } from '../helpers/redis.js';
import { busybox, Harness, untilRunning } from '../helpers/stevedore.js';

describe('cancel while the cancel channel reconnects', () => {
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

  it('acts on a cancel flag whose announcement the subscriber missed', async () => {
    await h.worker();
    const client = h.client();
    const { id } = await client.submit(busybox(['sleep', '60'], { stopGraceSeconds: 1 }));
    await untilRunning(client, id);
    // The announcement is lost (never published here); only the durable flag is left, as when
    // the cancel came while the subscriber was away. Dropping its connection makes it reconnect.
    await raw.set(keys.cancel({ prefix: 'bull', queue: h.queue }, id), '1');
    expect(await raw.client('KILL', 'TYPE', 'pubsub')).toBeGreaterThan(0);
    const result = await client.waitForResult(id, { timeoutMs: 15_000 });
    expect(result).toMatchObject({ state: 'Cancelled', reason: 'cancelled' });
  });
});
