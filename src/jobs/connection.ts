import { Redis, type RedisOptions } from 'ioredis';
import { withSocketErrors } from './redis-socket.js';

/** Where Redis is: a URL, ioredis options, or a connected ioredis instance (shared, not closed by us). */
export type RedisTarget = string | RedisOptions | Redis;

/**
 * TLS material for a `rediss://` server, as PEM text or bytes: `ca` to trust a private CA
 * (default: Node's built-in CAs), `cert` and `key` for servers that check clients (`tls-auth-clients`).
 */
export interface RedisTls {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
}

/**
 * A new connection to `target`. BullMQ needs `maxRetriesPerRequest: null` on connections it
 * blocks on (docs/pitfalls.md, "Connections"), so every connection we make gets it: commands
 * then wait for Redis to come back instead of failing after a few retries.
 */
export function connect(
  target: RedisTarget,
  onError: (error: Error) => void = () => undefined,
  tls?: RedisTls,
): Redis {
  const told = (error: Error): void => onError(withoutSecrets(error));
  const redis =
    target instanceof Redis
      ? target.duplicate(withSocketErrors({ ...target.options, maxRetriesPerRequest: null }, told))
      : newRedis(target, tls, {}, told);
  // ioredis reconnects by itself and queued commands wait for it; without a listener it would
  // print every failed reconnect to stderr. The caller decides what to log.
  redis.on('error', told);
  return redis;
}

/**
 * ioredis options for a URL or options object, with `tls` added (ioredis reads the URL itself;
 * `rediss://` alone means TLS with Node's defaults). BullMQ's own extra connections (a Worker's
 * blocking client) are `duplicate()`s of ours, so they inherit TLS and credentials.
 */
function redisOptions(target: string | RedisOptions, tls?: RedisTls): [string | undefined, RedisOptions] {
  const extra: RedisOptions = { maxRetriesPerRequest: null, ...(tls ? { tls } : {}) };
  return typeof target === 'string' ? [target, extra] : [undefined, { ...target, ...extra }];
}

/**
 * A connection made from `redisOptions`, for callers that set more options (the start-up check).
 * `onSocketError` hears every error of its sockets, also those ioredis no longer listens for
 * (redis-socket.ts); the client's own 'error' event is the caller's to listen to.
 */
export function newRedis(
  target: string | RedisOptions,
  tls: RedisTls | undefined,
  more: RedisOptions,
  onSocketError: (error: Error) => void,
): Redis {
  const [url, options] = redisOptions(target, tls);
  const all = withSocketErrors({ ...options, ...more }, onSocketError);
  return url === undefined ? new Redis(all) : new Redis(url, all);
}

/** Commands whose arguments hold credentials (`AUTH [user] password`, `HELLO … AUTH user password`). */
const SECRET_COMMANDS = new Set(['auth', 'hello']);

/**
 * The error with the arguments of a failed AUTH or HELLO hidden: ioredis hangs the failed command
 * on its ReplyError (`error.command.args`), and a logger that prints the error would print the
 * password. Other errors are returned as they are.
 */
export function withoutSecrets<E extends Error>(error: E): E {
  const command = (error as E & { command?: { name?: unknown; args?: unknown } }).command;
  if (!command || typeof command.name !== 'string' || !SECRET_COMMANDS.has(command.name.toLowerCase())) {
    return error;
  }
  Object.defineProperty(error, 'command', { value: { name: command.name, args: ['***'] }, enumerable: true });
  return error;
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
