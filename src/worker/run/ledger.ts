import type { Logger } from 'pino';
import type { ImageIdentity } from '../../executors/executor.js';
import { coerceError, type Phase, PhaseError } from '../../jobs/errors.js';
import type { RunPhase } from '../../jobs/progress.js';
import type { TimeoutRecord } from '../../jobs/timeouts.js';
import type { StopReason } from './result.js';

/** One entry of the published phase history. */
export interface HistoryEntry {
  phase: RunPhase;
  at: string;
}

/**
 * What one attempt has learned so far, in one place: the state machine's phase and its marks,
 * the exit, why it was stopped, and the first error. Starts pessimistic: no exit code.
 */
export class RunLedger {
  phase: Phase = 'admitted';
  exitCode: number | null = null;
  oomKilled = false;
  /** Limits the runtime could not apply (exitDetails), for the result. */
  limitsNotApplied: string[] = [];
  startedAt: string | null = null;
  stopReason: StopReason | null = null;
  /** Which timeout ran out, when one did (stopReason `timeout`). */
  timeout: TimeoutRecord | null = null;
  /** The image the container runs, once loadImage() or an adoption said. */
  image: ImageIdentity | null = null;
  /** The job's logger; gains the containerId once there is a container. */
  log: Logger;
  readonly history: HistoryEntry[] = [];
  readonly marks: { phase: Phase | 'queued'; at: number }[];
  private first: { error: Error; phase: Phase } | null = null;

  constructor(enqueuedAt: number, logger: Logger) {
    this.marks = [{ phase: 'queued', at: enqueuedAt }];
    this.log = logger;
  }

  /** The error that ended the run; later ones never replace it (they are usually its echo). */
  get firstError(): Error | null {
    return this.first?.error ?? null;
  }

  /** Where the first error happened: its own phase if it names one, else the run's phase then. */
  get errorPhase(): Phase {
    return this.first?.phase ?? this.phase;
  }

  /** Keeps `error` if it is the run's first; returns it as an Error either way, for logging. */
  keepError(error: unknown): Error {
    const coerced = coerceError(error);
    this.first ??= { error: coerced, phase: coerced instanceof PhaseError ? coerced.phase : this.phase };
    return coerced;
  }

  /** Records a transition; `done` is history only (the result keeps the phase the run ended in). */
  enter(next: RunPhase, now = Date.now()): void {
    if (next !== 'done') {
      this.phase = next;
      this.marks.push({ phase: next, at: now });
    }
    this.history.push({ phase: next, at: new Date(now).toISOString() });
  }

  /** The stop reasons that are not a final result: the job goes on elsewhere or later. */
  get interruptedBy(): 'lost-lock' | 'shutdown' | 'detach' | null {
    const reason = this.stopReason;
    return reason === 'lost-lock' || reason === 'shutdown' || reason === 'detach' ? reason : null;
  }
}
