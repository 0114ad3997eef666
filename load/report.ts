import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { JobResult } from '../src/jobs/result.js';
import type { Kind, PlannedJob } from './mix.js';
import type { Outcome } from './run-load.js';
import type { ScrapedMetrics } from './worker-metrics.js';

export interface LoadReport {
  describe: string;
  jobs: number;
  elapsedMs: number;
  jobsPerSecond: number;
  latencyMs: { p50: number; p95: number; p99: number };
  shares: Record<string, number>;
  redis: { beforeBytes: number; afterBytes: number; perThousandBytes: number };
  rssBytes: Record<string, number>;
  /** Invalid specs the client refused itself, before they reached the queue. */
  refused: number;
  lost: string[];
  /** Jobs whose submit failed and said so (the producer told), that never got a result. */
  told: string[];
  /** Jobs whose waitForResult gave up (an error, or none in time) though a result was there to read. */
  waitErrors: string[];
  runTwice: string[];
  wrong: string[];
  leaked: string[];
  /** Namespace holders left after the workers stopped, per worker id (set once they have). */
  holdersLeft: Record<string, number>;
  actions: string[];
  /** The workers' own stevedore_jobs_total, scraped from their /metrics (compose replicas); null when none was. */
  metrics: ScrapedMetrics | null;
}

/** The value below which `q` of the sorted values lie (nearest rank); 0 for none. */
export function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0;
}

export interface SummaryInput {
  describe: string;
  outcomes: Outcome[];
  starts: Map<string, string[]>;
  hashes: Map<string, string | null>;
  elapsedMs: number;
  memoryBefore: number;
  memoryAfter: number;
  rss: Map<string, number>;
  leaked: string[];
  actions: string[];
  check: (job: PlannedJob, result: JobResult, hash?: string | null) => string | null;
  allowedStarts: (kind: Kind) => { min: number; max: number };
}

/** Turns the outcomes into the report: every job is right, lost, run twice or wrong. */
export function summarize(input: SummaryInput): LoadReport {
  const lost: string[] = [];
  const told: string[] = [];
  const waitErrors: string[] = [];
  const runTwice: string[] = [];
  const wrong: string[] = [];
  const latencies: number[] = [];
  const shares: Record<string, number> = {};
  let finished = 0;
  let refused = 0;
  for (const o of input.outcomes) {
    const started = input.starts.get(o.job.id) ?? [];
    const starts = started.length;
    const allowed = input.allowedStarts(o.job.kind);
    if (starts > allowed.max) {
      const history = o.result?.attempts.map((a) =>
        `${a.worker}: ${a.state}/${a.reason} ${a.error ?? ''}`.trim(),
      );
      runTwice.push(
        `${o.job.id} (${o.job.kind}): ${starts} container starts (${started.join(', ')}); adopted ${o.result?.adopted}; runs: ${history?.join('; ') ?? 'no result'}`,
      );
    }
    if (o.refused) {
      refused += 1;
      continue;
    }
    if (o.submitError !== undefined && !o.result) {
      told.push(
        `${o.job.id} (${o.job.kind}, via ${o.job.via}): refused at submit, producer told: ${o.submitError}`,
      );
      continue;
    }
    if (o.waitError !== undefined && o.result)
      waitErrors.push(`${o.job.id}: waitForResult gave up (${o.waitError}), yet the result was there`);
    if (!o.result || o.finishedAt === undefined) {
      lost.push(`${o.job.id} (${o.job.kind}, via ${o.job.via}): no result`);
      continue;
    }
    finished += 1;
    latencies.push(o.finishedAt - o.submittedAt);
    const host = o.result.worker?.id ?? '(none: never ran)';
    shares[host] = (shares[host] ?? 0) + 1;
    const problem = input.check(o.job, o.result, input.hashes.get(o.job.id));
    if (problem) wrong.push(problem);
    else if (starts < allowed.min)
      wrong.push(`${o.job.id} (${o.job.kind}): a result, but the engine saw no start`);
  }
  latencies.sort((a, b) => a - b);
  return {
    describe: input.describe,
    jobs: input.outcomes.length,
    elapsedMs: input.elapsedMs,
    jobsPerSecond: input.outcomes.length / (input.elapsedMs / 1000),
    latencyMs: {
      p50: percentile(latencies, 0.5),
      p95: percentile(latencies, 0.95),
      p99: percentile(latencies, 0.99),
    },
    shares,
    redis: {
      beforeBytes: input.memoryBefore,
      afterBytes: input.memoryAfter,
      perThousandBytes: finished ? ((input.memoryAfter - input.memoryBefore) / finished) * 1000 : 0,
    },
    rssBytes: Object.fromEntries(input.rss),
    refused,
    lost,
    told,
    waitErrors,
    runTwice,
    wrong,
    leaked: input.leaked,
    holdersLeft: {},
    actions: input.actions,
    metrics: null,
  };
}

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const pct = (part: number, whole: number) => `${Math.round((part / whole) * 100)}%`;

/** One Markdown table row per run, then the details that do not fit a row. */
export function renderTable(reports: LoadReport[]): string {
  const rows = reports.map((r) => {
    const total = Object.values(r.shares).reduce((a, b) => a + b, 0);
    const shares = Object.values(r.shares)
      .sort((a, b) => b - a)
      .map((n) => pct(n, total))
      .join(' / ');
    const rss = Object.values(r.rssBytes);
    return `| ${r.describe} | ${r.jobs} | ${(r.elapsedMs / 1000).toFixed(1)} s | ${r.jobsPerSecond.toFixed(1)} | ${r.latencyMs.p50} / ${r.latencyMs.p95} / ${r.latencyMs.p99} | ${shares} | ${mib(r.redis.beforeBytes)} → ${mib(r.redis.afterBytes)} (${mib(r.redis.perThousandBytes)}) | ${rss.length ? mib(Math.max(...rss)) : 'n/a'} | ${r.lost.length} / ${r.runTwice.length} / ${r.wrong.length} / ${r.leaked.length} | ${Object.values(r.holdersLeft).reduce((a, b) => a + b, 0)} |`;
  });
  const details = reports.flatMap((r) =>
    [
      ...r.actions,
      ...r.lost,
      ...r.told,
      ...r.waitErrors,
      ...r.runTwice,
      ...r.wrong,
      ...r.leaked.map((c) => `leaked ${c}`),
      ...Object.entries(r.holdersLeft).map(
        ([w, n]) => `${n} network-namespace holders of worker ${w} left (removed by the load test)`,
      ),
      ...(r.metrics ? [metricsLine(r, r.metrics)] : []),
    ].map((line) => `- ${r.describe}: ${line}`),
  );
  return [
    '| workers | jobs | wall | jobs/s | submit→result ms p50 / p95 / p99 | share per worker (result.worker.id) | Redis used_memory before → after (per 1,000 finished) | peak worker RSS | lost / run twice / wrong / leaked | netns holders left |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
    ...(details.length ? ['', ...details] : []),
  ].join('\n');
}

/** The workers' own count beside the load test's (a killed process counts up to its last scrape). */
function metricsLine(r: LoadReport, m: ScrapedMetrics): string {
  const states = Object.entries(m.jobsByState)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([state, n]) => `${state} ${n}`)
    .join(', ');
  const total = Object.values(m.jobsByState).reduce((a, b) => a + b, 0);
  const own = r.jobs - r.lost.length;
  return `workers' /metrics: stevedore_jobs_total ${total} (${states || 'none'}) over ${m.processes} worker processes (${m.scrapes} scrapes, ${m.failed} missed), beside ${own} results the load test read`;
}

/** A block of BENCHMARKS.md that one kind of run rewrites: its heading (when first added) and markers. */
export interface Block {
  heading: string;
  start: string;
  end: string;
}

export const LOAD_BLOCK: Block = {
  heading: 'Load test',
  start: '<!-- load:start (written by npm run load) -->',
  end: '<!-- load:end -->',
};
export const SENTINEL_BLOCK: Block = {
  heading: 'Sentinel failover under load',
  start: '<!-- sentinel:start (written by npm run load -- --sentinel) -->',
  end: '<!-- sentinel:end -->',
};

/** Replaces the block of BENCHMARKS.md between `which`'s markers (or appends it), keeping everything else. */
export async function writeBlock(
  which: Block,
  block: string,
  path = join(import.meta.dirname, '..', 'BENCHMARKS.md'),
): Promise<void> {
  const current = await readFile(path, 'utf8').catch(() => '# Benchmarks\n');
  const start = current.indexOf(which.start);
  const end = current.indexOf(which.end);
  const next =
    start === -1 || end === -1
      ? `${current.trimEnd()}\n\n## ${which.heading}\n\n${which.start}\n${block}\n${which.end}\n`
      : `${current.slice(0, start + which.start.length)}\n${block}\n${current.slice(end)}`;
  await writeFile(path, next);
}
