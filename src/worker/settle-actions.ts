import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import type { JobResult } from '../jobs/result.js';
import { retryAfter } from './bullmq-retry.js';
import type { Housekeeping } from './housekeeping.js';
import type { JobRecords } from './job-records.js';
import { tellFinished, type WorkerEvents } from './observer.js';
import { thisRun } from './recovery/history.js';
import { lostLock, type Settlement } from './settlement.js';

/** The run a settlement is carried out for, and what carrying it out touches. */
export interface SettledRun {
  job: Pick<Job, 'moveToWait' | 'opts' | 'attemptsMade'>;
  jobId: string;
  /** The attempt's lock token: the history entry and side result are written only while it holds. */
  token: string | undefined;
  queue: string;
  /** The run's result with its earlier runs, before the decision is noted in it. */
  result: JobResult;
  /** Removes the run's container (RunOutcome.release). */
  release: () => Promise<void>;
  records: Pick<JobRecords, 'history' | 'addRunFenced' | 'writeSideResult'>;
  books: Pick<Housekeeping, 'hold' | 'releaseNow'>;
  events: WorkerEvents;
  log: Logger;
}

/**
 * Does what settle() decided for a run that ended, and gives BullMQ its answer: returns the
 * result, or throws the settlement's error. The run's container is removed only once BullMQ has
 * stored the answer (`books`), except when another worker may own the job (it is left for that
 * worker, or removed if it never started) or the worker shuts down (stopped before the job goes
 * back, so nobody adopts its exit code).
 */
export async function carryOut(
  settled: Exclude<Settlement, { kind: 'rerouted' }>,
  run: SettledRun,
): Promise<JobResult> {
  const { job, jobId, token, result, release, records, books, log } = run;
  const finished = (final: JobResult): void => tellFinished(run.events, run.queue, final);
  /** Another worker may own the job: its container is left for it (or removed if unstarted), the run noted. */
  const letGo = async (lost: ReturnType<typeof lostLock>): Promise<never> => {
    books.hold(jobId, release);
    books.releaseNow(jobId);
    await records.history.add(jobId, thisRun(result, lost.note));
    throw lost.error;
  };
  switch (settled.kind) {
    case 'put-back':
      // A stopped container goes before the job goes back: nobody may adopt its exit code.
      await release();
      await records.history.add(jobId, thisRun(result, settled.note));
      log.info(
        { detached: settled.detached },
        'worker shutting down: job goes back to the queue without spending an attempt',
      );
      await job.moveToWait(token);
      throw settled.error;
    case 'lost-lock':
      return await letGo(settled);
    case 'retried': {
      // The history is the ledger of the budgets: this entry, with the budget that pays for
      // the rerun, is the one place the spending is recorded (runNumber keeps it from being
      // settled twice when this worker dies before BullMQ has counted the run). It is fenced
      // by the attempt's lock token: a run that lost the job writes none.
      if (!(await records.addRunFenced(jobId, thisRun(settled.result), token))) {
        log.warn({ state: result.state, reason: result.reason }, 'result not written: the job lock is gone');
        return await letGo(lostLock(true));
      }
      finished(settled.result);
      // The rest wait until BullMQ has stored the failure (the worker's 'failed').
      books.hold(jobId, release);
      log.info(
        { delayMs: settled.delayMs, why: settled.result.attempts.at(-1)?.why },
        'job runs again, as its retry rules say',
      );
      retryAfter(job, settled.delayMs);
      throw settled.error;
    }
    case 'failed': {
      if (!(await records.writeSideResult(settled.result, token))) {
        log.warn({ state: result.state, reason: result.reason }, 'result not written: the job lock is gone');
        return await letGo(lostLock(true));
      }
      finished(settled.result);
      // The rest wait until BullMQ has stored the failure (the worker's 'failed').
      books.hold(jobId, release);
      throw settled.error;
    }
    case 'completed':
      finished(settled.result);
      books.hold(jobId, release);
      return settled.result;
  }
}
