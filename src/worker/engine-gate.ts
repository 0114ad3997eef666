import { type Job, WaitingError } from 'bullmq';
import type { Logger } from 'pino';
import { answersWithin } from './answers-within.js';

/** The engine is asked at least this often while the worker runs (and more often for a short outage limit). */
const MAX_CHECK_INTERVAL_MS = 5_000;
/** One ask may take this long before it counts as no answer (the engine's own `_ping` answers in ms). */
const CHECK_TIMEOUT_MS = 5_000;

export interface EngineGateOptions {
  /** The runtime's engine: resolves when it answers (ContainerRuntime.checkAvailable). */
  check: () => Promise<void>;
  /** STEVEDORE_ENGINE_OUTAGE_MS: how long the engine may be away before the worker stops taking jobs. */
  outageMs: number;
  /** Stop and start taking jobs (BullMQ's Worker.pause(true) / resume()). */
  close: () => Promise<void>;
  open: () => Promise<void>;
  /** The gate opened or closed: presence tells readers at once. */
  changed: () => void;
  logger: Logger;
  /** Runtime name for messages ("docker", "podman", "singularity"). */
  runtime: string;
  now?: () => number;
}

/**
 * Keeps the worker from taking jobs while its engine is away for longer than the outage limit,
 * instead of taking them and failing each as infra. It asks the engine every few seconds; after
 * `outageMs` without an answer it stops taking jobs (running ones go on as the runtime allows),
 * and once the engine answers again it takes jobs again, with no restart.
 */
export class EngineGate {
  private downSince: number | null = null;
  private lastError = '';
  private closedReason: string | null = null;
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly options: EngineGateOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Why the worker takes no jobs because of its engine, or null. */
  get reason(): string | null {
    return this.closedReason;
  }

  /** How often the engine is asked: a quarter of the outage limit, at most MAX_CHECK_INTERVAL_MS. */
  get intervalMs(): number {
    return Math.max(250, Math.min(MAX_CHECK_INTERVAL_MS, Math.floor(this.options.outageMs / 4)));
  }

  start(): void {
    this.timer = setInterval(() => {
      this.checking ??= this.tick().finally(() => {
        this.checking = undefined;
      });
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Stops asking; the worker's own close ends its taking of jobs. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.checking;
  }

  /** One ask of the engine, and what follows from its answer. */
  async tick(): Promise<void> {
    const answer = await answersWithin(this.options.check, CHECK_TIMEOUT_MS);
    if (this.stopped) return;
    if (answer === null) {
      this.downSince = null;
      if (this.closedReason !== null) await this.reopen();
      return;
    }
    this.lastError = answer;
    this.downSince ??= this.now();
    const away = this.now() - this.downSince;
    if (this.closedReason === null && away >= this.options.outageMs) await this.shut(away);
  }

  private async shut(away: number): Promise<void> {
    const { runtime, outageMs } = this.options;
    this.closedReason = `the ${runtime} engine has not answered for ${Math.round(away / 1000)} s (STEVEDORE_ENGINE_OUTAGE_MS=${outageMs}; last: ${this.lastError}): taking no jobs until it answers; check the engine`;
    this.options.logger.error({ awayMs: away, err: this.lastError }, this.closedReason);
    this.options.changed();
    await this.options.close();
  }

  private async reopen(): Promise<void> {
    this.closedReason = null;
    this.options.logger.warn(`the ${this.options.runtime} engine answers again: taking jobs`);
    await this.options.open();
    this.options.changed();
  }
}

/**
 * A job taken while the gate closed (a fetch under way when it paused the worker): back to the
 * queue for another worker, no attempt spent (BullMQ reads the WaitingError so).
 */
export async function putBackWhileAway(
  reason: string,
  job: Pick<Job, 'moveToWait'>,
  token: string | undefined,
  log: Logger,
): Promise<never> {
  log.info({ reason }, 'engine away: job put back without spending an attempt');
  await job.moveToWait(token);
  throw new WaitingError();
}
