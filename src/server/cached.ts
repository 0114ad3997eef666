/**
 * A value read at most once per `ttlMs`, with at most one read under way: callers share the read
 * in flight however long it takes, and then its value until `ttlMs` after it settled. A failed
 * read is not kept, so the next caller tries again.
 */
export class CachedValue<T> {
  private last: { value: Promise<T>; settledAt: number | undefined } | undefined;

  constructor(
    private readonly ttlMs: number,
    private readonly read: () => Promise<T>,
    private readonly now: () => number = Date.now,
  ) {}

  get(): Promise<T> {
    const last = this.last;
    if (last && (last.settledAt === undefined || this.now() - last.settledAt < this.ttlMs)) return last.value;
    const entry: { value: Promise<T>; settledAt: number | undefined } = {
      value: this.read(),
      settledAt: undefined,
    };
    this.last = entry;
    entry.value.then(
      () => {
        entry.settledAt = this.now();
      },
      () => {
        if (this.last === entry) this.last = undefined;
      },
    );
    return entry.value;
  }
}
