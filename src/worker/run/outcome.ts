import { PhaseError } from '../../jobs/errors.js';
import type { JobResult } from '../../jobs/result.js';
import type { RunContext } from './context.js';
import { releaseContainer } from './release.js';
import { buildResult } from './result.js';
import type { RunParts } from './run-parts.js';

/** What a run ends with, for the processor to settle. */
export interface RunOutcome {
  result: JobResult;
  /**
   * Removes the container. Not started yet: the worker calls it once the result is safely in
   * Redis, so a worker killed in between leaves a container to adopt, never a lost result.
   */
  release: () => Promise<void>;
  /** Set when the run was stopped for a reason that is not a final result (lost lock, shutdown). */
  interruptedBy: 'lost-lock' | 'shutdown' | 'detach' | null;
  /** The first error, when the run failed for an infrastructure reason. */
  error: Error | null;
}

/**
 * The end of a run, after `finalizing`: the container is left for adoption or kept for release,
 * the result is built from what the ledger learned, and events.log and progress say it (`done`).
 */
export async function runOutcome(ctx: RunContext, parts: RunParts): Promise<RunOutcome> {
  const { spec, executor } = ctx;
  const { state, output, events, progress, sampler, transition } = parts;
  // Only a started container is left for adoption (by the next worker after a detach, by the
  // job's new owner after a lost lock), and only on a runtime that can adopt; one not started yet
  // is removed as usual, and so is one nobody could adopt (the next owner runs the job again).
  const detached =
    executor.capabilities.adopt &&
    (state.stopReason === 'detach' || state.stopReason === 'lost-lock') &&
    state.exitCode === null &&
    state.startedAt !== null;
  if (detached) executor.detach();
  const result = buildResult({
    jobId: ctx.jobId,
    attempt: ctx.attempt,
    spec,
    worker: ctx.worker,
    runtime: await executor.runtime().catch(() => null),
    containerId: executor.containerId || null,
    cgroupId: executor.cgroupId() || null,
    image: state.image,
    exitCode: state.exitCode,
    oomKilled: state.oomKilled,
    limitsNotApplied: state.limitsNotApplied,
    stopReason: state.stopReason,
    timeout: state.stopReason === 'timeout' ? state.timeout : null,
    firstError: state.firstError,
    errorPhase: state.errorPhase,
    marks: state.marks,
    startedAt: state.startedAt,
    finishedAt: Date.now(),
    usage: sampler.tracker.usage,
    stdout: output.stdout,
    stderr: output.stderr,
    adoptedFrom: ctx.adopt ? { attempt: ctx.attempt, worker: ctx.adopt.fromWorker } : null,
    reattached: executor.reattachments().length > 0,
  });
  const { state: final, reason, signal, usage } = result;
  events.write('result', { state: final, reason, exitCode: state.exitCode, signal, usage });
  transition('done');
  await Promise.all([output.closeEvents(state.log), progress.flushed()]);
  state.log.info({ state: final, reason, exitCode: state.exitCode }, 'run finished');
  return {
    result,
    release: detached ? async () => undefined : () => releaseContainer(executor, state.log),
    interruptedBy: state.interruptedBy,
    error: final === 'Failed' ? (state.firstError ?? new PhaseError(state.errorPhase, 'failed')) : null,
  };
}
