import { Redis, type RedisOptions } from 'ioredis';

/** Where Redis is: a URL, ioredis options, or a connected ioredis instance (shared, not closed by us). */
export type RedisTarget = string | RedisOptions | Redis;

/**
 * A new connection to `target`. BullMQ needs `maxRetriesPerRequest: null` on connections it
 * blocks on (docs/pitfalls.md, "Connections"), so every connection we make gets it: commands
 * then wait for Redis to come back instead of failing after a few retries.
 */
export function connect(target: RedisTarget, onError: (error: Error) => void = () => undefined): Redis {
  const redis =
    target instanceof Redis
      ? target.duplicate({ maxRetriesPerRequest: null })
      : typeof target === 'string'
        ? new Redis(target, { maxRetriesPerRequest: null })
        : new Redis({ ...target, maxRetriesPerRequest: null });
  // ioredis reconnects by itself and queued commands wait for it; without a listener it would
  // print every failed reconnect to stderr. The caller decides what to log.
  redis.on('error', onError);
  return redis;
}

/** An error handler that logs at most once per `intervalMs`, for reconnect storms. */
export function throttled(log: (error: Error) => void, intervalMs = 5_000): (error: Error) => void {
  let last = 0;
  return (error) => {
    const now = Date.now();
    if (now - last < intervalMs) return;
    last = now;
    log(error);
  };
}
