import { Job, type Queue } from 'bullmq';
import type { RedisConnection } from './connection.js';
import { coerceError, UnknownJobError } from './errors.js';
import { keys, type QueueAddress, SIDE_KEY_TTL_SECONDS } from './keys.js';
import { type JobResult, resultWithoutRun } from './result.js';
import type { JobSpecInput } from './spec.js';

export type CancelOutcome = 'cancelled' | 'cancelling' | 'finished';

/** What cancelling uses of the client: its queue and connection, and the job's side result. */
export interface CancellationDeps {
  queue: Queue;
  redis: RedisConnection;
  address: QueueAddress;
  sideResult: (id: string) => Promise<JobResult | null>;
}

const WAITING_STATES = new Set(['waiting', 'delayed', 'prioritized', 'paused', 'waiting-children']);
/** States a job reaches once a worker has taken it. */
const TAKEN_STATES = new Set(['active', 'completed', 'failed']);

/**
 * Cancels a job from any process. A waiting or delayed job is removed and gets a Cancelled
 * result; an active job's worker stops its container. The request is recorded first, so a
 * worker that takes the job meanwhile sees it before starting a container.
 */
export async function cancelJob(deps: CancellationDeps, id: string): Promise<CancelOutcome> {
  const { queue, redis, address } = deps;
  await redis.set(keys.cancel(address, id), '1', 'EX', SIDE_KEY_TTL_SECONDS);
  const job = await Job.fromId<JobSpecInput, JobResult>(queue, id);
  if (!job) {
    if (await deps.sideResult(id)) return 'finished';
    await redis.del(keys.cancel(address, id));
    throw new UnknownJobError(id);
  }
  const state = await job.getState();
  if (state === 'completed' || state === 'failed') return 'finished';
  if (WAITING_STATES.has(state)) {
    const result = cancelledWhileWaiting(id, job);
    await redis.set(keys.result(address, id), JSON.stringify(result), 'EX', SIDE_KEY_TTL_SECONDS);
    try {
      await job.remove();
      return 'cancelled';
    } catch (error) {
      await redis.del(keys.result(address, id));
      // BullMQ refuses to remove a locked job with a plain Error: the job's state, not the
      // message, says whether a worker took it meanwhile (it then sees the flag and cancels).
      if (!TAKEN_STATES.has(await job.getState())) {
        throw new Error(
          `cancelling job ${id}: removing it from the queue failed (${coerceError(error).message}); its cancel flag is set, so no worker starts it; run cancel again`,
          { cause: error },
        );
      }
    }
  }
  await redis.publish(keys.cancelChannel(address), id);
  return 'cancelling';
}

function cancelledWhileWaiting(id: string, job: Job<JobSpecInput, JobResult>): JobResult {
  return resultWithoutRun({
    jobId: id,
    data: job.data,
    state: 'Cancelled',
    reason: 'cancelled',
    attempt: job.attemptsMade,
    worker: null,
    error: { phase: 'admitted', message: 'cancelled before it started' },
  });
}
