/** Small statistics for benchmark figures. */
export function median(values: number[]): number {
  return percentile(values, 50);
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

/** Runs `total` tasks with at most `concurrency` at once. */
export async function pool(
  total: number,
  concurrency: number,
  task: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, total) }, async () => {
      while (next < total) await task(next++);
    }),
  );
}

export const fmt = (n: number, digits = 1): string => n.toFixed(digits);

/** The median of paired ratios, with the lowest and highest: how the bench prints a ratio. */
export const spread = (r: number[]): string =>
  `${fmt(median(r), 2)} (${fmt(Math.min(...r), 2)}–${fmt(Math.max(...r), 2)})`;

/** One row of the bench's table. */
export interface BenchRow {
  figure: string;
  stevedore: string;
  baseline: string;
  ratio: string;
  target: string;
}
