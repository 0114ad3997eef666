import { Redis, type RedisOptions } from 'ioredis';

/** Where Redis is: a URL, ioredis options, or a connected ioredis instance (shared, not closed by us). */
export type RedisTarget = string | RedisOptions | Redis;

/**
 * A new connection to `target`. BullMQ needs `maxRetriesPerRequest: null` on connections it
 * blocks on (PITFALLS.md), so every connection we make gets it: commands then wait for Redis
 * to come back instead of failing after a few retries.
 */
export function connect(target: RedisTarget): Redis {
  if (target instanceof Redis) return target.duplicate({ maxRetriesPerRequest: null });
  if (typeof target === 'string') return new Redis(target, { maxRetriesPerRequest: null });
  return new Redis({ ...target, maxRetriesPerRequest: null });
}
