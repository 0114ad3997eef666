import type { SummaryInput } from '../../load/report.js';

/** What `summarize` takes, for a run of no jobs that saw nothing; `over` sets what a test is about. */
export function summaryInput(over: Partial<SummaryInput> = {}): SummaryInput {
  return {
    describe: 'test',
    outcomes: [],
    starts: new Map(),
    hashes: new Map(),
    elapsedMs: 1000,
    memoryBefore: 0,
    memoryAfter: 0,
    rss: new Map(),
    leaked: [],
    actions: [],
    check: () => null,
    allowedStarts: () => ({ min: 1, max: 1 }),
    ...over,
  };
}
