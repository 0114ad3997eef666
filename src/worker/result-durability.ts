import type { RedisConnection } from '../jobs/connection.js';
import { coerceError } from '../jobs/errors.js';
import { bullmqKeys, type QueueAddress } from '../jobs/keys.js';
import { acknowledgedBy, type Durability } from '../jobs/replicas.js';

/** Null when the job's stored result is on enough replicas, else why it is not known to be. */
export type ConfirmStored = (jobId: string) => Promise<string | null>;

/**
 * Asks Redis (`WAIT`) whether `durability.replicas` replicas hold what BullMQ stored for a job.
 * `connection` must be the one BullMQ's Worker writes on (the connection handed to it): `WAIT`
 * counts that connection's writes, and replicas apply writes in order, so the side result written
 * before on another connection is covered too.
 */
export function confirmStoredResults(
  connection: RedisConnection,
  address: QueueAddress,
  durability: Durability,
): ConfirmStored {
  const { replicas, timeoutMs } = durability;
  return async (jobId) => {
    const what = `the result of job ${jobId} is on the master, but`;
    try {
      const acknowledged = await acknowledgedBy(connection, bullmqKeys.job(address, jobId), durability);
      if (acknowledged >= replicas) return null;
      return `${what} ${acknowledged} of ${replicas} replicas (STEVEDORE_RESULT_REPLICAS) confirmed it within ${timeoutMs} ms (STEVEDORE_RESULT_REPLICAS_TIMEOUT_MS)`;
    } catch (error) {
      return `${what} asking its replicas (WAIT) failed: ${coerceError(error).message}`;
    }
  };
}
