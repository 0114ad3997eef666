import type { WorkerOptions } from 'bullmq';
import type { WorkerConfig } from '../config/worker.js';
import type { RedisConnection } from '../jobs/connection.js';
import type { KeepFinished } from './retention.js';

/** BullMQ's settings for the worker's one Worker. */
export function bullmqOptions(
  config: Pick<WorkerConfig, 'prefix' | 'concurrency' | 'lockDurationMs'>,
  connection: RedisConnection,
  keep: KeepFinished,
): WorkerOptions {
  return {
    connection,
    prefix: config.prefix,
    concurrency: config.concurrency,
    lockDuration: config.lockDurationMs,
    // A crashed worker's job is noticed within one lock duration and adopted by the next worker;
    // repeated crashes must not turn a job into a failure (its container may still be fine).
    stalledInterval: config.lockDurationMs,
    maxStalledCount: 10,
    // Jobs leave their own retention to the worker (STEVEDORE_KEEP_FINISHED).
    removeOnComplete: keep,
    removeOnFail: keep,
    autorun: false,
  };
}
