import type { Phase } from '../../jobs/errors.js';
import type { RunPhase } from '../../jobs/progress.js';
import type { TimeoutName, TimeoutRecord, Timeouts } from '../../jobs/timeouts.js';
import { type LongTimer, setLongTimeout } from './long-timer.js';

export interface PhaseTimeoutDeps {
  /** The job's timeouts as the policy left them (seconds); queueSeconds is admission's, not the run's. */
  timeouts: Timeouts;
  /** The spec field each came from, for the result (`maxRunTimeSeconds` for a job that used the old name). */
  fieldOf: (name: TimeoutName) => string;
  /** When the run's latest output byte came (ms since epoch), on either stream; 0: none yet. */
  lastOutputAt: () => number;
  /** The run's phase now, named in the record of a timeout that fires. */
  phase: () => Phase;
  /** Called once, by the first timeout that fires. */
  fired: (record: TimeoutRecord) => void;
  now?: () => number;
}

/**
 * The run's timeouts as timers: runSeconds from admission (armed at once), imageSeconds while
 * the image loads, startSeconds from creating until the container runs, noOutputSeconds while it
 * runs with no output. Each is armed when its phase begins and cleared when it ends; the first
 * to fire is the run's, the rest are cleared.
 */
export class PhaseTimeouts {
  private readonly timers = new Map<TimeoutName, LongTimer>();
  private done = false;
  private readonly now: () => number;

  constructor(private readonly deps: PhaseTimeoutDeps) {
    this.now = deps.now ?? Date.now;
    this.arm('runSeconds');
  }

  /** Arms and clears timers as the run enters `phase`. */
  entered(phase: RunPhase): void {
    if (phase === 'loading-image') this.arm('imageSeconds');
    else this.clear('imageSeconds');
    if (phase === 'creating') this.arm('startSeconds');
    else if (phase !== 'starting') this.clear('startSeconds');
    if (phase === 'running') this.armNoOutput(this.now());
    else this.clear('noOutputSeconds');
  }

  dispose(): void {
    this.done = true;
    for (const name of [...this.timers.keys()]) this.clear(name);
  }

  private arm(name: TimeoutName, afterMs?: number): void {
    const seconds = this.deps.timeouts[name];
    if (seconds === undefined || this.done) return;
    this.clear(name);
    this.timers.set(
      name,
      setLongTimeout(() => this.fire(name, seconds), afterMs ?? seconds * 1000),
    );
  }

  /**
   * One timer for the whole silence, not one per chunk: when it fires it looks at when output
   * last came, and waits the rest if some came meanwhile.
   */
  private armNoOutput(since: number): void {
    const seconds = this.deps.timeouts.noOutputSeconds;
    if (seconds === undefined || this.done) return;
    const limitMs = seconds * 1000;
    this.clear('noOutputSeconds');
    const check = (): void => {
      const quietSince = Math.max(since, this.deps.lastOutputAt());
      const left = quietSince + limitMs - this.now();
      if (left <= 0) this.fire('noOutputSeconds', seconds);
      else this.timers.set('noOutputSeconds', setLongTimeout(check, left));
    };
    this.timers.set('noOutputSeconds', setLongTimeout(check, limitMs));
  }

  private clear(name: TimeoutName): void {
    this.timers.get(name)?.clear();
    this.timers.delete(name);
  }

  private fire(name: TimeoutName, seconds: number): void {
    this.timers.delete(name);
    if (this.done) return;
    this.dispose();
    this.deps.fired({ field: this.deps.fieldOf(name), name, phase: this.deps.phase(), seconds });
  }
}
