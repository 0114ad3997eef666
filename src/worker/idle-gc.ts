/** How long a worker must have had nothing to run before it collects its garbage. */
export const IDLE_GC_DELAY_MS = 2_000;

/** The collector `--expose-gc` puts on the global object, null without the flag. */
function exposedGc(): (() => void) | null {
  return (globalThis as { gc?: () => void }).gc ?? null;
}

/**
 * Once a worker has had nothing to run for a while, one full garbage collection hands the
 * memory that the last jobs used back to the system, so an idle worker stays small. Needs
 * `--expose-gc` (the `stevedore` bin sets it); without it this does nothing.
 */
export class IdleCollector {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly busy: () => boolean,
    /** What collects; null for none (the default is the exposed gc, looked up when this is made). */
    private readonly collect: (() => void) | null = exposedGc(),
    private readonly delayMs = IDLE_GC_DELAY_MS,
  ) {}

  /** Call when a run ended: collects after delayMs if the worker stays idle until then. */
  runEnded(): void {
    if (!this.collect || this.busy()) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.busy()) this.collect?.();
    }, this.delayMs);
    this.timer.unref();
  }

  /** Collects now, if nothing runs: once start-up is done, its garbage need not stay resident. */
  collectNow(): void {
    if (this.collect && !this.busy()) this.collect();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
