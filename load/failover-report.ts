import type { FailoverRecord, SentinelEvent } from './failover.js';
import { percentile } from './report.js';
import type { Outcome } from './run-load.js';

/** Submit→result times of a group of jobs, in ms. */
export interface Delay {
  jobs: number;
  p50: number;
  p99: number;
  max: number;
}

/** What one failover did to the run, every time counted from the kill. */
export interface FailoverFigures {
  record: FailoverRecord;
  promotedMs: number;
  /** To the first result the load test saw after the kill (of any job); null: none came. */
  firstResultMs: number | null;
  /**
   * To the result of the first job submitted after the kill to finish: such a job exists only on
   * the new master, so a worker took it from there. Null: none finished.
   */
  firstNewJobMs: number | null;
  /** Per worker id: to the container start of the first job submitted after the kill that it ran. */
  workersBack: Record<string, number>;
  /** Workers that ran jobs submitted before the kill but none submitted after it: stopped. */
  stopped: string[];
  /** Jobs in flight at some moment between the kill and `firstNewJobMs` (or the promotion). */
  delay: Delay;
}

export interface FailoverAnalysis {
  failovers: FailoverFigures[];
  /** The run's first jobs, in flight during no failover: each job slot's first makes its namespace holder. */
  warmup: Delay;
  /** The other jobs in flight during no failover: the steady state to compare with. */
  steady: Delay;
  /** Masters the sentinels switched to that no kill caused (`+switch-master` events). */
  unplanned: SentinelEvent[];
  /** Results that list more than one run (a lock lost in a failover makes one), and adopted ones. */
  reruns: number;
  adopted: number;
}

/** How long after a kill's promotion was seen a sentinel's `+switch-master` still counts as that kill's. */
const SWITCH_SLACK_MS = 2_000;

interface Finished {
  outcome: Outcome;
  finishedAt: number;
  worker: string | null;
  /** When its container started (the worker's clock, the same host's). */
  startedAt: number | null;
}

function delayOf(latencies: number[]): Delay {
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    jobs: sorted.length,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    max: sorted.at(-1) ?? 0,
  };
}

/**
 * The failovers' recovery times and the delay jobs saw, from the kills and every job's outcome
 * (in the order submitted); the first `warmup` jobs are kept apart from the steady state.
 */
export function analyseFailovers(
  records: FailoverRecord[],
  outcomes: Outcome[],
  options: { warmup?: number; events?: SentinelEvent[] } = {},
): FailoverAnalysis {
  const warmup = options.warmup ?? 0;
  const first = new Set(outcomes.slice(0, warmup));
  const finished: Finished[] = outcomes.flatMap((outcome) =>
    outcome.result && outcome.finishedAt !== undefined
      ? [
          {
            outcome,
            finishedAt: outcome.finishedAt,
            worker: outcome.result.worker?.id ?? null,
            startedAt: outcome.result.startedAt ? Date.parse(outcome.result.startedAt) : null,
          },
        ]
      : [],
  );
  const inFailover = new Set<Finished>();
  const failovers = records.map((record): FailoverFigures => {
    const { killedAt } = record;
    const after = finished.filter((f) => f.finishedAt >= killedAt);
    const firstResult = Math.min(...after.map((f) => f.finishedAt));
    const newJobs = finished.filter((f) => f.outcome.submittedAt >= killedAt);
    const firstNewJob = Math.min(...newJobs.map((f) => f.finishedAt));
    const workersBack: Record<string, number> = {};
    for (const f of newJobs) {
      if (f.worker === null || f.startedAt === null) continue;
      workersBack[f.worker] = Math.min(
        workersBack[f.worker] ?? Number.POSITIVE_INFINITY,
        f.startedAt - killedAt,
      );
    }
    const before = new Set(
      finished.filter((f) => f.outcome.submittedAt < killedAt && f.worker !== null).map((f) => f.worker),
    );
    const stopped = [...before].filter((w): w is string => w !== null && !(w in workersBack));
    const recoveredAt = Number.isFinite(firstNewJob) ? firstNewJob : record.promotedAt;
    const hit = finished.filter((f) => f.outcome.submittedAt <= recoveredAt && f.finishedAt >= killedAt);
    for (const f of hit) inFailover.add(f);
    return {
      record,
      promotedMs: record.promotedAt - killedAt,
      firstResultMs: Number.isFinite(firstResult) ? firstResult - killedAt : null,
      firstNewJobMs: Number.isFinite(firstNewJob) ? firstNewJob - killedAt : null,
      workersBack,
      stopped,
      delay: delayOf(hit.map((f) => f.finishedAt - f.outcome.submittedAt)),
    };
  });
  const calm = finished.filter((f) => !inFailover.has(f));
  const latencies = (list: Finished[]) => list.map((f) => f.finishedAt - f.outcome.submittedAt);
  return {
    failovers,
    warmup: delayOf(latencies(calm.filter((f) => first.has(f.outcome)))),
    steady: delayOf(latencies(calm.filter((f) => !first.has(f.outcome)))),
    reruns: finished.filter((f) => (f.outcome.result?.attempts.length ?? 0) > 1).length,
    adopted: finished.filter((f) => f.outcome.result?.adopted === true).length,
    unplanned: (options.events ?? []).filter(
      (e) =>
        e.channel === '+switch-master' &&
        !records.some((r) => e.at >= r.killedAt && e.at <= r.promotedAt + SWITCH_SLACK_MS),
    ),
  };
}

const seconds = (ms: number | null) => (ms === null ? 'none' : `${(ms / 1000).toFixed(1)} s`);
const delayCells = (d: Delay) => `${d.jobs} | ${d.p50} / ${d.p99} / ${d.max}`;

/** The failovers' table and the delay table, in Markdown. */
export function renderFailovers(analysis: FailoverAnalysis): string {
  const rows = analysis.failovers.map((f, i) => {
    const back = Object.values(f.workersBack).sort((a, b) => a - b);
    const workers = `${back.length} of ${back.length + f.stopped.length}${back.length ? ` (${back.map(seconds).join(', ')})` : ''}`;
    const rejoin = f.record.rejoinMs === null ? 'did not rejoin' : seconds(f.record.rejoinMs);
    return `| ${i + 1} | :${f.record.oldPort} → :${f.record.newPort} at ${Math.round(f.record.atSubmitted * 100)}% submitted | ${seconds(f.promotedMs)} | ${seconds(f.firstResultMs)} | ${seconds(f.firstNewJobMs)} | ${workers} | ${seconds(f.record.settledMs)} | ${rejoin} |`;
  });
  const delays = [
    `| warm-up: the first jobs, each job slot's first (it makes the slot's network-namespace holder) | ${delayCells(analysis.warmup)} |`,
    `| steady state: the others in flight during no failover | ${delayCells(analysis.steady)} |`,
    ...analysis.failovers.map(
      (f, i) => `| in flight between kill ${i + 1} and its first new job done | ${delayCells(f.delay)} |`,
    ),
  ];
  const stopped = analysis.failovers.flatMap((f, i) =>
    f.stopped.map(
      (w) => `- failover ${i + 1}: worker ${w} ran jobs before the kill and none submitted after it`,
    ),
  );
  const start = analysis.failovers[0]?.record.killedAt ?? 0;
  const unplanned = analysis.unplanned.map(
    (e) =>
      `- a failover no kill caused, ${((e.at - start) / 1000).toFixed(1)} s after the first kill: +switch-master ${e.message}`,
  );
  return [
    '| failover | master killed → promoted | promoted (a) | first result after the kill | first job submitted after the kill done (b) | workers taking jobs again (to their first container start) | all sentinels and replicas on the new master | killed node, started then, a synced replica after |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    '| jobs | n | submit→result ms p50 / p99 / max |',
    '|---|---|---|',
    ...delays,
    '',
    `Results listing more than one run: ${analysis.reruns}; taken over from a container of an earlier run (adopted): ${analysis.adopted}.`,
    ...(stopped.length + unplanned.length ? ['', ...stopped, ...unplanned] : []),
  ].join('\n');
}
