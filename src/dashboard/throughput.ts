/** Minutes of history the overview's throughput shows. */
export const THROUGHPUT_MINUTES = 10;

export interface MinuteBucket {
  /** Start of the minute (Unix ms, inclusive) and its end (exclusive). */
  from: number;
  to: number;
}

/**
 * The last `minutes` whole minutes before `now`, oldest first, and the current one so far. The
 * finished index (keys.finished) is scored by finish time in ms, so each is one ZCOUNT.
 */
export function minuteBuckets(now: number, minutes = THROUGHPUT_MINUTES): MinuteBucket[] {
  const current = Math.floor(now / 60_000) * 60_000;
  const buckets: MinuteBucket[] = [];
  for (let i = minutes; i >= 0; i -= 1) {
    const from = current - i * 60_000;
    buckets.push({ from, to: from + 60_000 });
  }
  return buckets;
}
