import { randomBytes } from 'node:crypto';
import type { RedisConnection } from './connection.js';
import { keys, type QueueAddress } from './keys.js';
import { DEPLOYMENT_ID } from './names.js';

/**
 * The id of the deployment a queue address belongs to: the Redis, its prefix and the queue. It is
 * made once, by whichever worker asks first (SET NX), and kept in that Redis with no expiry, so
 * every worker of the deployment reads the same one and another deployment (another Redis, or
 * another prefix on the same one) has its own. The key sits under the queue's prefix, so with a
 * hash-tagged prefix it lives in the same Redis Cluster slot as the queue's other keys.
 *
 * Containers carry it (LABELS.deployment, the end of their names): a worker removes or adopts only
 * containers of its own deployment. A Redis that loses its data makes a new id; containers made
 * under the old one are then another deployment's, left to the operator (docs/names.md).
 */
export async function deploymentId(
  redis: Pick<RedisConnection, 'set' | 'get'>,
  address: QueueAddress,
): Promise<string> {
  const key = keys.deployment(address);
  await redis.set(key, randomBytes(6).toString('hex'), 'NX');
  const id = await redis.get(key);
  if (id === null || !DEPLOYMENT_ID.test(id)) {
    throw new Error(
      `Redis key ${key} holds ${id === null ? 'nothing' : JSON.stringify(id)}, not a deployment id (12 hex digits): delete the key so that a worker makes a new one, or restore its value`,
    );
  }
  return id;
}
