import type { ContainerExecutor } from '../../executors/executor.js';
import type { RunPhase } from '../../jobs/progress.js';
import type { TimeoutName, TimeoutRecord, Timeouts } from '../../jobs/timeouts.js';
import type { EventsLog } from '../output/events-log.js';
import type { RunLedger } from './ledger.js';
import { PhaseTimeouts } from './phase-timeouts.js';
import type { StopReason } from './result.js';

/** Thrown by the checks between phases: the run was asked to stop before its container started. */
export class StopRequested extends Error {
  constructor(readonly reason: StopReason) {
    super(`stop requested: ${reason}`);
    this.name = 'StopRequested';
  }
}

/** The StopReason a stop signal was aborted with; anything else counts as a cancel. */
export function stopReasonOf(signal: AbortSignal): StopReason {
  const reason = signal.reason as unknown;
  return reason === 'timeout' || reason === 'lost-lock' || reason === 'shutdown' || reason === 'detach'
    ? reason
    : 'cancelled';
}

export interface StopDeps {
  /** Aborted with a StopReason: cancel channel, lost lock, shutdown, detach. */
  signal: AbortSignal;
  /** The durable cancel flag (one Redis round trip). */
  isCancelled: () => Promise<boolean>;
  /** The job's timeouts (seconds; runSeconds counted from admission); an absent one is no limit. */
  timeouts: Timeouts;
  /** The spec field each timeout came from, named in the result. */
  timeoutField: (name: TimeoutName) => string;
  /** When the latest output byte came (ms since epoch), for noOutputSeconds; 0: none yet. */
  lastOutputAt: () => number;
  graceMs: number;
  executor: ContainerExecutor;
  state: RunLedger;
  events: EventsLog;
  transition: (next: RunPhase) => void;
}

/**
 * The stop sources of one run (cancel, the timeouts, lost lock, shutdown, detach) and what each
 * does to the container. Before the container runs, a stop is only remembered and the checks
 * between phases throw StopRequested; once it runs, the container is stopped with the grace,
 * removed at once (lost lock), or let go of (detach).
 */
export class StopSources {
  /** Aborted to stop waiting for the container without stopping it (detach, lost lock). */
  readonly letGo = new AbortController();
  private readonly stopAsked = new AbortController();
  private stopping: Promise<void> | null = null;
  /** The stop found the container already exited: no signal reached it. */
  private signalledNothing = false;
  /** The container was adopted already exited: the previous owner may have stopped it. */
  private adoptedExited = false;
  private readonly timeouts: PhaseTimeouts;
  private readonly onAbort = (): void => this.act();

  constructor(private readonly deps: StopDeps) {
    deps.signal.addEventListener('abort', this.onAbort, { once: true });
    this.timeouts = new PhaseTimeouts({
      timeouts: deps.timeouts,
      fieldOf: deps.timeoutField,
      lastOutputAt: deps.lastOutputAt,
      phase: () => deps.state.phase,
      fired: (record) => this.timedOut(record),
    });
  }

  /** Call on every transition: the phase timeouts are armed and cleared by phase. */
  entered(phase: RunPhase): void {
    this.timeouts.entered(phase);
  }

  /** Aborted by any stop, for waits before the container runs (an image pull, say). */
  get asked(): AbortSignal {
    return this.stopAsked.signal;
  }

  /** Throws StopRequested when a stop came in; no Redis round trip. */
  check(): void {
    const { signal, state } = this.deps;
    if (signal.aborted) throw new StopRequested(stopReasonOf(signal));
    // A timeout that ran out while loading or creating means the container never starts.
    if (state.stopReason === 'timeout') throw new StopRequested('timeout');
  }

  /**
   * check(), and the durable cancel flag. Read at admission and right before start; in between
   * a cancel reaches the run through the signal (the cancel channel).
   */
  async checkDurable(): Promise<void> {
    this.check();
    if (await this.deps.isCancelled()) throw new StopRequested('cancelled');
  }

  /** Acts on a stop that came while there was nothing to stop yet; call once the container runs. */
  actOnPending(): void {
    if (this.deps.signal.aborted || this.deps.state.stopReason) this.act();
  }

  /**
   * Call once wait() gave the exit code: settles when a stop under way is done (its failure is
   * already the run's error). A stop that found the container already exited did not end it: it
   * exited by itself, between its exit and wait() returning, so its exit code is the answer, as
   * for a stop that comes after wait() (act()). A shutdown would otherwise put the job back, and
   * it would run a second time.
   */
  async settled(): Promise<void> {
    await this.stopping;
    const { state, events } = this.deps;
    const reason = state.stopReason;
    if (!this.signalledNothing || reason === null) return;
    if (this.adoptedExited && (reason === 'cancelled' || reason === 'timeout')) {
      events.write('stop-found-exited', { reason, exitCode: state.exitCode, kept: reason });
      return;
    }
    state.stopReason = null;
    state.timeout = null;
    events.write('stop-found-exited', { reason, exitCode: state.exitCode });
    state.log.info(
      { reason, exitCode: state.exitCode },
      'the container had exited by itself before the stop reached it: its exit code is the answer',
    );
  }

  /**
   * Call when the adopted container had already exited. A cancel or timeout that was due before
   * the adoption may be what ended it (the previous owner stopped it, then died before writing the
   * result), so a stop that finds it exited does not make its exit code the answer.
   */
  noteAdoptedExited(): void {
    this.adoptedExited = true;
  }

  dispose(): void {
    this.timeouts.dispose();
    this.deps.signal.removeEventListener('abort', this.onAbort);
  }

  /**
   * A timeout ran out: the run's stop reason, unless another stop came first. An engine call in
   * flight (create, start) is not abandoned, which would leave the container it makes to nobody:
   * check() ends the run when it returns, or the container is stopped as soon as it runs.
   */
  private timedOut(record: TimeoutRecord): void {
    const { state, events } = this.deps;
    if (state.exitCode !== null || state.stopReason !== null) return;
    state.stopReason = 'timeout';
    state.timeout = record;
    events.write('timeout', { ...record });
    state.log.info({ timeout: record }, 'timeout ran out');
    this.act();
  }

  private act(): void {
    const { signal, state, events, executor } = this.deps;
    // The container has exited by itself: its exit code is the answer, whatever asks now. (A
    // shutdown or detach that put the job back here would have it run a second time.)
    if (state.exitCode !== null) return;
    state.stopReason ??= stopReasonOf(signal);
    this.stopAsked.abort(state.stopReason);
    if (state.stopReason === 'detach' || state.stopReason === 'lost-lock') {
      // Detach: the next worker adopts the container. Lost lock: another worker may own the job
      // now, and it adopts this same container (same attempt), running or exited; stopping or
      // removing it here would make that worker run the job again.
      events.write(state.stopReason === 'detach' ? 'detaching' : 'lost-lock', {
        containerId: executor.containerId,
      });
      this.letGo.abort(state.stopReason);
      return;
    }
    if (state.phase !== 'running' || this.stopping) return;
    const { graceMs } = this.deps;
    state.log.info({ reason: state.stopReason, graceMs }, 'stopping container');
    events.write('stop-requested', { reason: state.stopReason, graceMs });
    this.deps.transition('stopping');
    this.stopping = executor.stop({ graceMs }).then(
      (outcome) => {
        this.signalledNothing = !outcome.signalled;
      },
      (error: unknown) => {
        state.log.warn({ err: state.keepError(error) }, 'stop failed');
      },
    );
  }
}
