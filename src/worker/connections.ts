import type { Logger } from 'pino';
import { ConfigError } from '../config/errors.js';
import type { RedisTopology } from '../config/redis-topology.js';
import type { WorkerConfig } from '../config/worker.js';
import {
  connect,
  isClusterTarget,
  type RedisConnection,
  type RedisTls,
  throttled,
} from '../jobs/connection.js';
import { deploymentId } from '../jobs/deployment.js';
import { coerceError } from '../jobs/errors.js';
import { clusterPrefixProblem, type QueueAddress } from '../jobs/keys.js';
import { checkRedisAccess, RedisAccessError } from '../jobs/redis-check.js';
import { startEmbeddedRedis } from './embedded-redis.js';

/**
 * The worker's Redis, opened once at start and handed down: nothing below the worker makes a
 * connection of its own. Every connection reports its errors to `onError` (throttled).
 */
export interface WorkerRedis {
  /** The Redis in use (a URL, or a Sentinel or Cluster), with its password if any: for connecting, never for logs (describeTarget). */
  readonly target: string | RedisTopology;
  readonly address: QueueAddress;
  /** The deployment's id, kept in this Redis (deploymentId): it names and labels what the worker makes. */
  readonly deployment: string;
  /** Commands: job records, presence, the Queue, reconciling. */
  readonly commands: RedisConnection;
  /** BullMQ's Worker blocks on this one; BullMQ does not close a connection it was handed. */
  readonly blocking: RedisConnection;
  /** The cancel channel's subscriber; the cancel listener quits it. */
  readonly subscriber: RedisConnection;
  readonly onError: (error: Error) => void;
  /** Quits the commands and blocking connections, then leaves the embedded Redis (if any). */
  close(): Promise<void>;
  /** Undoes everything, subscriber included, when a later start-up step fails. */
  abandon(): Promise<void>;
}

/**
 * Wrong credentials, a missing ACL permission or an untrusted certificate stop the worker here,
 * as a ConfigError (one line, no password); a Redis not up yet is waited for as before.
 */
async function checkExternalRedis(
  target: string | RedisTopology,
  tls: RedisTls | undefined,
): Promise<undefined> {
  try {
    await checkRedisAccess(target, tls);
  } catch (error) {
    if (error instanceof RedisAccessError) throw new ConfigError(`connecting to Redis: ${error.message}`);
    throw error;
  }
  return undefined;
}

async function quit(connection: RedisConnection): Promise<void> {
  await connection.quit().catch(() => connection.disconnect());
}

/**
 * Checks the configured Redis (or starts the embedded one), connects, and reads the deployment's
 * id; a failure undoes what was opened and rejects with a ConfigError that says which step failed.
 */
export async function openWorkerRedis(
  config: Pick<WorkerConfig, 'redisUrl' | 'redisTopology' | 'stateDir' | 'queue' | 'prefix'>,
  tls: RedisTls | undefined,
  logger: Logger,
): Promise<WorkerRedis> {
  const external = config.redisTopology ?? config.redisUrl;
  const clusterProblem =
    external && isClusterTarget(external) ? clusterPrefixProblem(config.prefix) : undefined;
  if (clusterProblem) throw new ConfigError(`starting on a Redis Cluster: ${clusterProblem}`);
  const embedded = external
    ? await checkExternalRedis(external, tls)
    : await startEmbeddedRedis(config.stateDir, logger);
  const target = external ?? (embedded?.url as string);
  const address: QueueAddress = { queue: config.queue, prefix: config.prefix };
  const onError = throttled((error) =>
    logger.warn({ err: error }, 'Redis connection error; retrying (running containers are not affected)'),
  );
  const commands = connect(target, onError, tls);
  const blocking = connect(target, onError, tls);
  const subscriber = connect(target, onError, tls);
  const close = async (): Promise<void> => {
    for (const connection of [commands, blocking]) await quit(connection);
    await embedded?.stop();
  };
  const abandon = async (): Promise<void> => {
    await quit(subscriber);
    await close();
  };
  const deployment = await deploymentId(commands, address).catch(async (error: unknown) => {
    await abandon();
    throw new ConfigError(`reading the deployment's id from Redis: ${coerceError(error).message}`);
  });
  return { target, address, deployment, commands, blocking, subscriber, onError, close, abandon };
}
