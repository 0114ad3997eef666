import { type KeyObject, randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { RedisConnection } from './connection.js';
import { coerceError, ReplicationError, ValidationError } from './errors.js';
import { bullmqKeys, type QueueAddress } from './keys.js';
import { checkJobId } from './names.js';
import { registerQueueDeadline } from './queue-timeout.js';
import { acknowledgedBy, type Durability } from './replicas.js';
import { signedJobData } from './signing.js';
import { type JobSpecInput, parseJobSpec } from './spec.js';

export interface SubmitOptions {
  /** Your own id; submitting the same id twice yields the same job (idempotent). */
  jobId?: string;
  /**
   * Tries in all, for infrastructure failures (default 3): the old name of the spec's
   * `retry.infraLimit` (plus one), which wins when both are given (docs/retries.md).
   */
  attempts?: number;
  /** The old name of the spec's `retry.backoff` (milliseconds), which wins when both are given. */
  backoff?: number | { type: 'fixed' | 'exponential'; delay: number };
  /** 1 (highest) … 2097152; lower runs first. */
  priority?: number;
  /** Milliseconds to wait before the job may run. */
  delay?: number;
  /** Signed jobs only: no worker takes the job after this (Date or Unix ms); default 24 h from now. */
  notAfter?: Date | number;
}

/** What submitting uses of the client: its queue and connection, its signing key and durability. */
export interface SubmissionDeps {
  queue: Queue;
  redis: RedisConnection;
  address: QueueAddress;
  signer: { id: string; privateKey: KeyObject } | undefined;
  durability: Durability | undefined;
}

const DEFAULT_ATTEMPTS = 3;
const DEFAULT_BACKOFF = { type: 'exponential' as const, delay: 1_000 };

/** Validates the spec (throwing InvalidSpecError listing every problem) and enqueues it. */
export async function submitJob(
  deps: SubmissionDeps,
  spec: JobSpecInput,
  options: SubmitOptions = {},
): Promise<{ id: string }> {
  const { signer, address } = deps;
  const parsed = parseJobSpec(spec);
  // BullMQ's `attempts` bounds only the retries BullMQ makes by itself (an error the worker throws
  // outside the retry rules): the spec's infrastructure budget. Statuses count runs from the history.
  const infraLimit = parsed.retry?.infraLimit;
  if (options.jobId !== undefined) checkJobId(options.jobId);
  const queueSeconds = parsed.timeouts?.queueSeconds;
  if (queueSeconds !== undefined && (options.delay ?? 0) >= queueSeconds * 1000)
    throw new ValidationError(
      `delay (${options.delay} ms) is not less than timeouts.queueSeconds (${queueSeconds} s), which counts from submit: the job would time out before it may run; shorten the delay or raise queueSeconds`,
    );
  if (!signer && options.notAfter !== undefined)
    throw new ValidationError('notAfter applies to signed jobs only: give the client a signingKey');
  // A signature covers the job id, so a signed job gets its id here rather than from BullMQ.
  const jobId = signer ? (options.jobId ?? randomUUID()) : options.jobId;
  const data = signer
    ? signedJobData(
        spec,
        { jobId: jobId as string, queue: address.queue, notAfter: options.notAfter },
        signer,
      )
    : spec;
  const job = await deps.queue.add('run', data, {
    jobId,
    attempts: infraLimit === undefined ? (options.attempts ?? DEFAULT_ATTEMPTS) : infraLimit + 1,
    backoff: options.backoff ?? DEFAULT_BACKOFF,
    priority: options.priority,
    delay: options.delay,
  });
  if (job.id === undefined) throw new Error('submitting: Redis did not return a job id');
  if (deps.durability) await confirmOnReplicas(deps, job.id, deps.durability);
  // After the add, since BullMQ may choose the id. A producer that dies in between leaves the
  // deadline to the worker that takes the job (from the job's timestamp): docs/job-spec.md#timeouts.
  if (queueSeconds !== undefined) await registerQueueDeadline(deps.redis, address, job.id, queueSeconds);
  return { id: job.id };
}

/**
 * Throws a ReplicationError unless `durability.replicas` replicas hold the job. The master has
 * it either way, so the error says the job may exist: a failover before it reached a replica
 * would lose it, and submitting again with the same jobId is a no-op when it is there.
 */
async function confirmOnReplicas(
  deps: Pick<SubmissionDeps, 'redis' | 'address'>,
  id: string,
  durability: Durability,
): Promise<void> {
  const { replicas, timeoutMs } = durability;
  const what = `submitting job ${id}: the master took it, but`;
  const after = `the job exists on the master and may run, or be lost if the master fails over before a replica has it: check with getStatus("${id}") and submit again with jobId "${id}" (a no-op when the job is there)`;
  let acknowledged: number;
  try {
    acknowledged = await acknowledgedBy(deps.redis, bullmqKeys.job(deps.address, id), durability);
  } catch (error) {
    throw new ReplicationError(
      `${what} asking for its replicas (WAIT) failed: ${coerceError(error).message}; ${after}`,
      0,
      replicas,
    );
  }
  if (acknowledged >= replicas) return;
  throw new ReplicationError(
    `${what} ${acknowledged} of the ${replicas} replica${replicas === 1 ? '' : 's'} asked for (durability.replicas) confirmed it within ${timeoutMs} ms (durability.timeoutMs); ${after}, or give the replicas more time`,
    acknowledged,
    replicas,
  );
}
