import type { FinalUsage, UsageSample } from '../../executors/executor.js';
import type { Usage } from '../../jobs/result.js';

/** Share of the memory limit past which events.log warns. */
export const MEMORY_WARNING_RATIO = 0.9;

/** Keeps the most informative view of a run's usage across samples. */
export class UsageTracker {
  private cpuSeconds: number | null = null;
  private peakMemoryBytes: number | null = null;
  private blockIoBytes: number | null = null;
  private warned = false;

  /** Folds in a sample; returns a warning text the first time memory passes 90% of its limit. */
  add(sample: UsageSample): string | null {
    const max = (a: number | null, b: number | null): number | null => (b === null ? a : Math.max(a ?? 0, b));
    this.cpuSeconds = max(this.cpuSeconds, sample.cpuSeconds);
    this.peakMemoryBytes = max(this.peakMemoryBytes, sample.peakMemoryBytes);
    this.blockIoBytes = max(this.blockIoBytes, sample.blockIoBytes);
    const used = sample.memoryBytes ?? sample.peakMemoryBytes;
    const limit = sample.memoryLimitBytes;
    if (
      !this.warned &&
      used !== null &&
      limit !== null &&
      limit > 0 &&
      used >= MEMORY_WARNING_RATIO * limit
    ) {
      this.warned = true;
      return `memory at ${Math.round((100 * used) / limit)}% of its limit (${used} of ${limit} bytes)`;
    }
    return null;
  }

  /**
   * Folds in the run's final counters: they are exact where samples are late or missing (a job
   * shorter than the first sample has none), so their CPU time wins; the peak is the higher one.
   */
  addFinal(final: FinalUsage): void {
    this.cpuSeconds = final.cpuSeconds ?? this.cpuSeconds;
    if (final.peakMemoryBytes !== null)
      this.peakMemoryBytes = Math.max(this.peakMemoryBytes ?? 0, final.peakMemoryBytes);
    this.blockIoBytes = final.blockIoBytes ?? this.blockIoBytes;
  }

  get usage(): Usage | null {
    if (this.cpuSeconds === null && this.peakMemoryBytes === null && this.blockIoBytes === null) return null;
    return {
      cpuSeconds: this.cpuSeconds,
      peakMemoryBytes: this.peakMemoryBytes,
      blockIoBytes: this.blockIoBytes,
    };
  }
}

/** When a running container's usage is read: soon after start (short jobs get one too), then every `everyMs`. */
export interface UsageTiming {
  firstMs: number;
  everyMs: number;
}

export const DEFAULT_USAGE_TIMING: UsageTiming = { firstMs: 500, everyMs: 1_000 };

/**
 * Reads a running container's usage on a timer into a UsageTracker, one reading at a time,
 * from start() until stop(). A failed reading is skipped: the next one may work.
 */
export class UsageSampler {
  readonly tracker = new UsageTracker();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly read: () => Promise<UsageSample | null>,
    private readonly timing: UsageTiming,
    private readonly hooks: {
      /** After each reading: the usage so far, and a warning the first time memory nears its limit. */
      sampled: (usage: Usage | null, warning: string | null, reading: UsageSample) => void;
      failed: (error: unknown) => void;
    },
  ) {}

  start(): void {
    this.schedule(this.timing.firstMs);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.sample().then(() => this.schedule(this.timing.everyMs));
    }, delayMs);
  }

  private async sample(): Promise<void> {
    try {
      const reading = await this.read();
      if (!reading || this.stopped) return;
      const warning = this.tracker.add(reading);
      this.hooks.sampled(this.tracker.usage, warning, reading);
    } catch (error) {
      this.hooks.failed(error);
    }
  }
}
