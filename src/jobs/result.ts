import { constants } from 'node:os';
import type { Phase } from './errors.js';
import type { TimeoutRecord } from './timeouts.js';

export type RunState = 'Complete' | 'Cancelled' | 'Failed';
export type RunReason =
  | 'exited'
  | 'signalled'
  | 'oom'
  | 'timeout'
  | 'cancelled'
  | 'infra'
  | 'invalid'
  /**
   * The image cannot be had: not in the registry, access denied, a malformed reference, absent
   * with pull policy `never`, a tarball without it. Never retried.
   */
  | 'image';

/** What is known about one output stream of a run. */
export interface StreamSummary {
  /** Bytes the stream carried, all of them, also those past the cap. */
  bytes: number;
  /**
   * Bytes of it the file at `path` holds: `bytes` unless the worker's per-stream cap
   * (maxOutputBytes) was reached, where the file ends; 0 when no file is kept.
   */
  keptBytes: number;
  /** The last bytes (at most TAIL_BYTES), cut on a UTF-8 character boundary. */
  tail: string;
  /** Where the full text is kept on the worker host; null when no log directory is set. */
  path: string | null;
  /** Whether a bounded copy (Redis) dropped its oldest bytes. */
  truncated: boolean;
}

export interface Usage {
  cpuSeconds: number | null;
  peakMemoryBytes: number | null;
  blockIoBytes: number | null;
}

/** Which budget of the job's `retry` paid for a rerun (docs/retries.md). */
export type RerunBudget = 'limit' | 'infra' | 'ignored' | { rule: number };

/** A retry rule that matched a run's end: its index in `retry.rules` and what it said. */
export interface MatchedRule {
  index: number;
  action: 'retry' | 'fail' | 'ignore' | 'complete';
}

/**
 * One run of a job, as the `attempts` history keeps it. The fields after `error` are absent
 * from runs recorded by a worker older than the retry rules.
 */
export interface AttemptRecord {
  attempt: number;
  worker: string;
  state: RunState;
  reason: RunReason;
  error: string | null;
  /** When its container started running; null when it never did. */
  startedAt?: string | null;
  /** When the run ended (as far as the worker that recorded it knows). */
  finishedAt?: string | null;
  exitCode?: number | null;
  signal?: string | null;
  /** The retry rule that matched its end; null: none did. */
  rule?: MatchedRule | null;
  /** Whether the job ran again after it. */
  retried?: boolean;
  /** Why it was, or was not, run again. */
  why?: string | null;
  /** The budget its rerun was paid from; null when none was spent (a shutdown, a lost worker, or no rerun). */
  budget?: RerunBudget | null;
}

/** The result of a finished job, as `getResult(id)` returns it. */
export interface JobResult {
  jobId: string;
  state: RunState;
  reason: RunReason;
  exitCode: number | null;
  /** Signal name when the process was killed by one (exit code 128+N). */
  signal: string | null;
  oomKilled: boolean;
  runtime: string | null;
  containerId: string | null;
  cgroupId: string | null;
  image: string;
  /** The engine's id of the image that ran (sha256:…); null when the run got no image. */
  imageId: string | null;
  /** The repo digest (name@sha256:…) when the image came from a registry; else null. */
  imageDigest: string | null;
  startedAt: string | null;
  finishedAt: string;
  /** Milliseconds spent in each phase, in order. */
  phases: Partial<Record<Phase | 'queued', number>>;
  usage: Usage | null;
  stdout: StreamSummary;
  stderr: StreamSummary;
  worker: { host: string; id: string } | null;
  attempt: number;
  adopted: boolean;
  /** Every run of the job, oldest first; the last is the run the fields above describe. */
  attempts: AttemptRecord[];
  /** The retry rule that decided the last run's end (a `complete` or `fail` rule); null: none did. */
  rule?: MatchedRule | null;
  labels: Record<string, string>;
  /** The phase is `queued` for a job that never got to run (a queue timeout). */
  error: { phase: Phase | 'queued'; message: string } | null;
  /**
   * Present when a timeout ended the run (reason `timeout`): which one (its spec field), the
   * phase the run was in when it fired, and its seconds.
   */
  timeout?: TimeoutRecord;
  /** Present when the runtime could not apply a limit of the spec (say, no cgroups): each limit and why. */
  limitsNotApplied?: string[];
}

/** How many bytes of each stream the result keeps. */
export const TAIL_BYTES = 4096;

const SIGNAL_NAMES = new Map<number, string>(
  Object.entries(constants.signals).map(([name, number]) => [number, name] as [number, string]),
);

/** The signal behind an exit code of 128+N, when N is a known signal. */
export function signalFromExitCode(exitCode: number | null): string | null {
  if (exitCode === null || exitCode <= 128 || exitCode > 128 + 64) return null;
  return SIGNAL_NAMES.get(exitCode - 128) ?? `SIG${exitCode - 128}`;
}

/**
 * Why a run ended. `oom` only on the kernel's word (the runtime's OOMKilled flag), never for a
 * SIGKILL that Stevedore sent itself: a stop we requested is reported as its own reason.
 */
export function terminationReason(input: {
  exitCode: number;
  oomKilled: boolean;
  stopReason: 'cancelled' | 'timeout' | null;
}): { state: RunState; reason: RunReason; signal: string | null } {
  const signal = signalFromExitCode(input.exitCode);
  if (input.stopReason) return { state: 'Cancelled', reason: input.stopReason, signal };
  if (input.oomKilled) return { state: 'Complete', reason: 'oom', signal };
  if (signal) return { state: 'Complete', reason: 'signalled', signal };
  return { state: 'Complete', reason: 'exited', signal: null };
}

/** The last `max` bytes of `buffer` as text, starting on a UTF-8 character boundary. */
export function utf8Tail(buffer: Buffer, max = TAIL_BYTES): string {
  let start = Math.max(0, buffer.length - max);
  // Skip continuation bytes (10xxxxxx) so the tail never starts inside a character.
  while (start < buffer.length && start > 0 && ((buffer[start] ?? 0) & 0xc0) === 0x80) start += 1;
  return buffer.subarray(start).toString('utf8');
}

export const emptyStream = (): StreamSummary => ({
  bytes: 0,
  keptBytes: 0,
  tail: '',
  path: null,
  truncated: false,
});

/**
 * The result of a job that never ran a container (invalid spec, cancelled while waiting, failed
 * without a recorded run): everything about the run is empty.
 */
export function resultWithoutRun(input: {
  jobId: string;
  data: unknown;
  state: RunState;
  reason: RunReason;
  attempt: number;
  worker: { host: string; id: string } | null;
  error: { phase: Phase | 'queued'; message: string };
  finishedAt?: Date;
  timeout?: TimeoutRecord;
}): JobResult {
  const data = (typeof input.data === 'object' && input.data !== null ? input.data : {}) as Record<
    string,
    unknown
  >;
  const labels =
    typeof data.labels === 'object' && data.labels !== null ? (data.labels as Record<string, string>) : {};
  return {
    jobId: input.jobId,
    state: input.state,
    reason: input.reason,
    exitCode: null,
    signal: null,
    oomKilled: false,
    runtime: null,
    containerId: null,
    cgroupId: null,
    image: typeof data.image === 'string' ? data.image : '',
    imageId: null,
    imageDigest: null,
    startedAt: null,
    finishedAt: (input.finishedAt ?? new Date()).toISOString(),
    phases: {},
    usage: null,
    stdout: emptyStream(),
    stderr: emptyStream(),
    worker: input.worker,
    attempt: input.attempt,
    adopted: false,
    attempts: input.worker
      ? [
          {
            attempt: input.attempt,
            worker: input.worker.id,
            state: input.state,
            reason: input.reason,
            error: input.error.message,
          },
        ]
      : [],
    labels,
    error: input.error,
    ...(input.timeout ? { timeout: input.timeout } : {}),
  };
}
