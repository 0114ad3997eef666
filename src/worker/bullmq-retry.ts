import type { Job } from 'bullmq';

/**
 * Has BullMQ run the job again after `delayMs`, when the processor then throws a plain Error.
 * The retry rules decide every rerun (settle), not BullMQ's `attempts`: BullMQ 6 decides in
 * `Job.moveToFailed` from this very job object's `opts.attempts` and `opts.backoff`
 * (`shouldRetryJob`, `attemptsMade + 1 < opts.attempts`; a `fixed` backoff is its delay), so one
 * more try and this delay are set there. Only the worker's copy changes: the stored options stay
 * as the producer gave them. Going through BullMQ's failure keeps its books true: `attemptsMade`
 * counts the run, `failedReason` says why it failed, and the worker's 'failed' event fires, which
 * releases the run's container once BullMQ has stored the failure.
 */
export function retryAfter(job: Pick<Job, 'opts' | 'attemptsMade'>, delayMs: number): void {
  job.opts = {
    ...job.opts,
    attempts: job.attemptsMade + 2,
    backoff: { type: 'fixed', delay: Math.max(0, Math.round(delayMs)) },
  };
}
