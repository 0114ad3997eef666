import type { ImageIdentity } from '../../executors/executor.js';
import type { Phase } from '../../jobs/errors.js';
import { ImageUnavailableError, MountChangedError } from '../../jobs/errors.js';
import { type JobResult, terminationReason, type Usage } from '../../jobs/result.js';
import type { JobSpec } from '../../jobs/spec.js';
import { type TimeoutRecord, timeoutMessage } from '../../jobs/timeouts.js';
import type { OutputCapture } from '../output/capture.js';

/** Why a run was asked to stop before its container finished on its own. */
export type StopReason = 'cancelled' | 'timeout' | 'lost-lock' | 'shutdown' | 'detach';

/** What the state machine learned during one attempt, turned into the result by `buildResult`. */
export interface RunFacts {
  jobId: string;
  attempt: number;
  spec: JobSpec;
  worker: { host: string; id: string };
  runtime: string | null;
  containerId: string | null;
  cgroupId: string | null;
  /** The image that ran (or would have); null when none was found. */
  image: ImageIdentity | null;
  exitCode: number | null;
  oomKilled: boolean;
  limitsNotApplied: string[];
  stopReason: StopReason | null;
  /** Which timeout ended the run, when one did. */
  timeout: TimeoutRecord | null;
  firstError: Error | null;
  /** Where the first error happened (the run's last phase when there was none). */
  errorPhase: Phase;
  marks: { phase: Phase | 'queued'; at: number }[];
  startedAt: string | null;
  finishedAt: number;
  usage: Usage | null;
  stdout: OutputCapture;
  stderr: OutputCapture;
  /** Set when this run took over a container an earlier worker lost. */
  adoptedFrom: { attempt: number; worker: string } | null;
  /** Set when the container outlived a docker engine restart and was taken back. */
  reattached: boolean;
}

/** Milliseconds spent in each phase, from the ordered transition marks. */
export function phaseDurations(marks: RunFacts['marks'], finishedAt: number): JobResult['phases'] {
  const phases: JobResult['phases'] = {};
  marks.forEach((mark, i) => {
    const end = marks[i + 1]?.at ?? finishedAt;
    phases[mark.phase] = (phases[mark.phase] ?? 0) + Math.max(0, end - mark.at);
  });
  return phases;
}

/**
 * The result of one attempt. Pessimistic: Failed/infra unless wait() gave an exit code, or a
 * user stop (cancel, timeout) ended the run first.
 */
export function buildResult(f: RunFacts): JobResult {
  const userStop = f.stopReason === 'cancelled' || f.stopReason === 'timeout' ? f.stopReason : null;
  let state: JobResult['state'] = 'Failed';
  let reason: JobResult['reason'] = 'infra';
  let signal: string | null = null;
  if (f.exitCode !== null) {
    ({ state, reason, signal } = terminationReason({
      exitCode: f.exitCode,
      oomKilled: f.oomKilled,
      stopReason: userStop,
    }));
  } else if (userStop) {
    state = 'Cancelled';
    reason = userStop;
  } else if (f.firstError instanceof ImageUnavailableError) {
    reason = 'image';
  } else if (f.firstError instanceof MountChangedError) {
    reason = 'invalid'; // as if admission had seen it: the policy would deny the path now
  }
  const timeout = userStop === 'timeout' ? f.timeout : null;
  const error =
    f.firstError !== null
      ? { phase: f.errorPhase, message: f.firstError.message }
      : timeout
        ? { phase: timeout.phase, message: timeoutMessage(timeout) }
        : null;
  return {
    jobId: f.jobId,
    state,
    reason,
    exitCode: f.exitCode,
    signal,
    oomKilled: f.oomKilled,
    runtime: f.runtime,
    containerId: f.containerId,
    cgroupId: f.cgroupId,
    image: f.spec.image,
    imageId: f.image?.imageId ?? null,
    imageDigest: f.image?.imageDigest ?? null,
    startedAt: f.startedAt,
    finishedAt: new Date(f.finishedAt).toISOString(),
    phases: phaseDurations(f.marks, f.finishedAt),
    usage: f.usage,
    stdout: f.stdout.summary(),
    stderr: f.stderr.summary(),
    worker: f.worker,
    attempt: f.attempt,
    adopted: f.adoptedFrom !== null || f.reattached,
    attempts: [
      ...(f.adoptedFrom
        ? [
            {
              attempt: f.adoptedFrom.attempt,
              worker: f.adoptedFrom.worker,
              state: 'Failed' as const,
              reason: 'infra' as const,
              error: 'worker lost the job; its container was adopted',
            },
          ]
        : []),
      {
        attempt: f.attempt,
        worker: f.worker.id,
        state,
        reason,
        error: error?.message ?? null,
        startedAt: f.startedAt,
        finishedAt: new Date(f.finishedAt).toISOString(),
        exitCode: f.exitCode,
        signal,
        // What the retry rules made of it is the settlement's to say (settle).
        rule: null,
        retried: false,
        why: null,
        budget: null,
      },
    ],
    labels: f.spec.labels,
    error,
    ...(timeout ? { timeout } : {}),
    ...(f.limitsNotApplied.length > 0 ? { limitsNotApplied: f.limitsNotApplied } : {}),
  };
}
