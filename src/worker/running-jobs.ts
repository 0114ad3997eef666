import type { Logger } from 'pino';
import type { StopReason } from './run/result.js';

/**
 * The jobs a worker holds: taken (one of BullMQ's slots, from the moment it is taken, admission
 * included) and running (admitted, with the controller that stops its run).
 */
export class RunningJobs {
  private readonly taken = new Set<string>();
  private readonly runs = new Map<string, AbortController>();

  constructor(
    private readonly logger: Logger,
    /** Told whenever the taken jobs change (the presence record). */
    private readonly changed: () => void,
  ) {}

  take(jobId: string): void {
    this.taken.add(jobId);
    this.changed();
  }

  letGo(jobId: string): void {
    this.taken.delete(jobId);
    this.changed();
  }

  /** The run begins: its stop signal, aborted with a StopReason by stop(). */
  start(jobId: string): AbortSignal {
    const controller = new AbortController();
    this.runs.set(jobId, controller);
    return controller.signal;
  }

  end(jobId: string): void {
    this.runs.delete(jobId);
  }

  /** Stops the job's run, once (a later reason does not replace the first). */
  stop(jobId: string, reason: StopReason): void {
    const controller = this.runs.get(jobId);
    if (controller && !controller.signal.aborted) {
      this.logger.info({ jobId, reason }, 'stopping job');
      controller.abort(reason);
    }
  }

  /** Ids of the jobs whose run goes on now. */
  running(): string[] {
    return [...this.runs.keys()];
  }

  takenIds(): string[] {
    return [...this.taken];
  }

  get count(): number {
    return this.runs.size;
  }
}
