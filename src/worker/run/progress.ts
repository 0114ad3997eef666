import type { Logger } from 'pino';
import type { JobProgress, PullProgress, RunPhase } from '../../jobs/progress.js';
import type { Usage } from '../../jobs/result.js';
import type { HistoryEntry } from './ledger.js';

/** Phase changes closer together than this are published as one progress write. */
const PROGRESS_COALESCE_MS = 100;

/** Who is running the attempt, as every progress snapshot says. */
export interface ProgressSource {
  attempt: number;
  worker: string;
  engine?: string;
  containerId: () => string;
}

/**
 * Publishes job progress off the critical path, coalesced: phases that follow each other within
 * PROGRESS_COALESCE_MS go out as one write, and while one write is in flight at most one more is
 * queued, sending the newest snapshot (it carries the whole history). `done` goes out at once.
 * A failed write is logged, never thrown: progress is for watchers, the result is the record.
 */
export class ProgressPublisher {
  private chain: Promise<void> = Promise.resolve();
  private queued = false;
  private latest: JobProgress | null = null;
  private coalescing: NodeJS.Timeout | undefined;

  constructor(
    private readonly publish: (progress: JobProgress) => Promise<void>,
    private readonly source: ProgressSource,
    private readonly log: () => Logger,
  ) {}

  update(
    phase: RunPhase,
    history: readonly HistoryEntry[],
    extra: { usage?: Usage; pull?: PullProgress } = {},
  ): void {
    this.latest = {
      phase,
      at: history.at(-1)?.at ?? new Date().toISOString(),
      history: [...history],
      attempt: this.source.attempt,
      worker: this.source.worker,
      engine: this.source.engine,
      containerId: this.source.containerId() || undefined,
      usage: extra.usage,
      pull: extra.pull,
    };
    if (phase === 'done') this.send();
    else this.coalescing ??= setTimeout(() => this.send(), PROGRESS_COALESCE_MS);
  }

  /** Settles once every write asked for so far is done. */
  flushed(): Promise<void> {
    return this.chain;
  }

  private send(): void {
    clearTimeout(this.coalescing);
    this.coalescing = undefined;
    if (this.queued) return;
    this.queued = true;
    this.chain = this.chain.then(async () => {
      this.queued = false;
      const snapshot = this.latest;
      this.latest = null;
      if (!snapshot) return;
      await this.publish(snapshot).catch((error: unknown) =>
        this.log().warn({ err: error, phase: snapshot.phase }, 'could not publish progress'),
      );
    });
  }
}
