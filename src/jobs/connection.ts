import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import { withSocketErrors } from './redis-socket.js';
import { redactRedisUrl } from './redis-url.js';

/** One Redis server or sentinel. */
export interface HostPort {
  host: string;
  port: number;
}

/**
 * Redis Sentinel: the sentinels, the name they know the master by, the sentinels' own password
 * (if they have one), and the user and password of the data nodes. The connection asks the
 * sentinels for the master now and after every failover. (These are ioredis options as well.)
 */
export interface SentinelTarget {
  sentinels: HostPort[];
  name: string;
  sentinelPassword?: string;
  username?: string;
  password?: string;
}

/** Redis Cluster: some of its nodes (the rest are learnt from them), and the nodes' user and password. */
export interface ClusterTarget {
  clusterNodes: HostPort[];
  username?: string;
  password?: string;
}

/** A connection Stevedore uses: one Redis (also through Sentinel) or a Redis Cluster. */
export type RedisConnection = Redis | Cluster;

/**
 * Where Redis is: a URL, ioredis options (a `SentinelTarget` among them), a Cluster's nodes, or a
 * connected ioredis instance or Cluster (shared, not closed by us).
 */
export type RedisTarget = string | RedisOptions | ClusterTarget | RedisConnection;

/** Whether `target` is a Redis Cluster, by its nodes or as a connected Cluster. */
export function isClusterTarget(target: RedisTarget): target is ClusterTarget | Cluster {
  return target instanceof Cluster || (typeof target === 'object' && 'clusterNodes' in target);
}

/** Where `target` is, fit for messages and logs: a URL without its password, or the nodes. */
export function describeTarget(target: RedisTarget): string {
  if (typeof target === 'string') return redactRedisUrl(target);
  if (target instanceof Redis || target instanceof Cluster) return 'the given ioredis connection';
  if ('clusterNodes' in target) return `Redis Cluster ${target.clusterNodes.map(hostPort).join(',')}`;
  if (target.sentinels) {
    return `master ${target.name ?? '?'} of Redis Sentinel ${target.sentinels.map(hostPort).join(',')}`;
  }
  return hostPort({ host: target.host ?? 'localhost', port: target.port ?? 6379 });
}

const hostPort = (node: Partial<HostPort>): string => `${node.host ?? 'localhost'}:${node.port ?? 6379}`;

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
): RedisConnection {
  const told = (error: Error): void => onError(withoutSecrets(error));
  const redis = opened(target, tls, told);
  // ioredis reconnects by itself and queued commands wait for it; without a listener it would
  // print every failed reconnect to stderr. The caller decides what to log.
  redis.on('error', told);
  return redis;
}

function opened(
  target: RedisTarget,
  tls: RedisTls | undefined,
  told: (error: Error) => void,
): RedisConnection {
  if (target instanceof Redis) {
    return target.duplicate(withSocketErrors({ ...target.options, maxRetriesPerRequest: null }, told));
  }
  if (target instanceof Cluster) {
    const redisOptions = { ...target.options.redisOptions, maxRetriesPerRequest: null };
    return target.duplicate([], { redisOptions: withSocketErrors(redisOptions, told) });
  }
  if (typeof target === 'object' && 'clusterNodes' in target) return newCluster(target, tls, {}, {}, told);
  return newRedis(target, tls, {}, told);
}

/**
 * ioredis options for a URL or options object, with `tls` added (ioredis reads the URL itself;
 * `rediss://` alone means TLS with Node's defaults). BullMQ's own extra connections (a Worker's
 * blocking client) are `duplicate()`s of ours, so they inherit TLS and credentials.
 */
function redisOptions(target: string | RedisOptions, tls?: RedisTls): [string | undefined, RedisOptions] {
  const extra: RedisOptions = { maxRetriesPerRequest: null, ...(tls ? { tls } : {}) };
  if (typeof target === 'string') return [target, extra];
  // Through Sentinel, ioredis drops `tls` for the data nodes unless told, and the sentinels have
  // their own: the same files serve both (docs/redis.md).
  const sentinelTls: RedisOptions =
    target.sentinels && tls ? { enableTLSForSentinelMode: true, sentinelTLS: tls } : {};
  return [undefined, { ...target, ...extra, ...sentinelTls }];
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

/**
 * How often a Cluster command is sent again while its slot has no master that answers. With
 * ioredis's default (16), a command issued during a failover failed after about 1.6 s with "Too
 * many Cluster redirections" (ioredis#1195), while promoting a replica takes the node timeout and
 * its election (15 s and more by default): a submit failed, and a worker lost progress and sweeps.
 * Each retry waits `retryDelayOnFailover` or `retryDelayOnClusterDown` (100 ms; at most two
 * retries per wait), so a command now waits out a failover of five minutes and more, as a
 * command to one Redis waits for it to come back (`maxRetriesPerRequest: null`). A MOVED between
 * two nodes that answer is retried at once, so only that runs out within seconds.
 */
export const CLUSTER_MAX_REDIRECTIONS = 6_000;

/**
 * A Cluster connection to `target`'s nodes. Every node connection the Cluster opens is made with
 * `redisOptions`, so each gets the credentials, TLS and the lasting socket error listener; its
 * commands wait through a failover (CLUSTER_MAX_REDIRECTIONS).
 */
export function newCluster(
  target: ClusterTarget,
  tls: RedisTls | undefined,
  more: RedisOptions,
  clusterMore: ClusterOptions,
  onSocketError: (error: Error) => void,
): Cluster {
  const credentials: RedisOptions = { username: target.username, password: target.password };
  const [, options] = redisOptions(credentials, tls);
  const redisOptionsOfNodes = withSocketErrors({ ...options, ...more }, onSocketError);
  return new Cluster(target.clusterNodes, {
    maxRedirections: CLUSTER_MAX_REDIRECTIONS,
    ...clusterMore,
    redisOptions: redisOptionsOfNodes,
  });
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
