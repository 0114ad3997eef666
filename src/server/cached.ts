/**
 * A value read at most once per `ttlMs`: callers in between share the last read, or the read
 * under way. A failed read is not kept, so the next caller tries again.
 */
export class CachedValue<T> {
  private last: { value: Promise<T>; at: number } | undefined;

  constructor(
    private readonly ttlMs: number,
    private readonly read: () => Promise<T>,
    private readonly now: () => number = Date.now,
  ) {}

  get(): Promise<T> {
    const now = this.now();
    if (this.last && now - this.last.at < this.ttlMs) return this.last.value;
    const value = this.read();
    const entry = { value, at: now };
    this.last = entry;
    value.catch(() => {
      if (this.last === entry) this.last = undefined;
    });
    return value;
  }
}
