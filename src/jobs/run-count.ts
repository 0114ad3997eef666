import type { AttemptRecord, JobResult, RerunBudget } from './result.js';
import {
  budgetName,
  effectiveRetry,
  type Granted,
  grantedOf,
  type LegacyRetryOptions,
  retrySchema,
  type Spent,
  spentOf,
} from './retry.js';
import { splitJobData } from './signing.js';
import type { QueueState } from './waiting.js';

/**
 * Where a job's runs stand: which run it is on, and what each budget of its retry rules has left
 * (docs/retries.md). The history is the ledger: every rerun a budget paid for is in it.
 */

/** One budget of a job's retry rules: what it grants, what earlier runs spent, what is left. */
export interface BudgetLeft {
  /** As the history's `budget` field names it: `limit`, `infra`, `ignored` or `{ rule: N }`. */
  budget: RerunBudget;
  granted: number;
  spent: number;
  left: number;
}

/** JobStatus.runs: which run, and the budgets left. */
export interface RunCount {
  /** The run's number (its STEVEDORE_ATTEMPT, the result's `attempt`); 0: the job ended before any run. */
  run: number;
  /** `under-way`: a worker has taken the job for this run; `next`: the job waits for it; `last`: the job has ended. */
  stage: 'under-way' | 'next' | 'last';
  /** Every budget of the job's rules, `limit` and `infra` first; null when the rules are not known (the spec is gone). */
  budgets: BudgetLeft[] | null;
  /** The same in words: `run 3 under way; reruns left: 1 of 2 from limit (the job's own failures), …`. */
  message: string;
}

/** What runCount needs, read with the job's status. */
export interface RunFacts {
  state: QueueState;
  /** BullMQ's count of the job's ended takes (`atm`). */
  attemptsMade: number;
  /** The job's run history (keys.runs): the runs before the one that gives its result. */
  history: readonly AttemptRecord[];
  /** The job's result once it has finished: its `attempt` and `attempts` are the final word. */
  result: Pick<JobResult, 'attempt' | 'attempts'> | null;
  /** What each budget grants (grantedFromProgress, else grantedFromSpec); null: not known. */
  granted: Granted | null;
}

/**
 * The number of the run a take starts (1-based; the result's `attempt`, the job's
 * STEVEDORE_ATTEMPT): BullMQ's count of ended runs plus one, or, when the history already holds
 * a settled rerun of that number or later (its worker died after recording it, before BullMQ
 * counted it), the one after that; so a run that was settled is never settled again.
 */
export function runNumber(attemptsMade: number, recorded: readonly AttemptRecord[]): number {
  let next = attemptsMade + 1;
  for (const run of recorded) if (run.retried && run.budget && run.attempt >= next) next = run.attempt + 1;
  return next;
}

const isFinished = (state: QueueState) => state === 'completed' || state === 'failed';

/** Which run the job is on and what its budgets have left, as the worker counts them. */
export function runCount(f: RunFacts): RunCount {
  const finished = isFinished(f.state);
  const stage: RunCount['stage'] = finished ? 'last' : f.state === 'active' ? 'under-way' : 'next';
  // A finished job's take was counted by BullMQ (moveToFinished adds one to `atm`): its run is
  // the one that take started, unless the result says it outright.
  const run =
    f.result?.attempt ?? runNumber(finished ? Math.max(f.attemptsMade - 1, 0) : f.attemptsMade, f.history);
  const budgets = f.granted ? budgetsLeft(f.granted, spentOf(f.result?.attempts ?? f.history)) : null;
  return { run, stage, budgets, message: runWords(run, stage, budgets) };
}

/** Each budget's grant, spending and rest: `limit` and `infra`, each rule's own, then `ignored` where a rule can spend it. */
export function budgetsLeft(granted: Granted, spent: Spent): BudgetLeft[] {
  const entry = (budget: RerunBudget, grants: number, used: number): BudgetLeft => ({
    budget,
    granted: grants,
    spent: used,
    left: Math.max(grants - used, 0),
  });
  const list = [entry('limit', granted.limit, spent.limit), entry('infra', granted.infra, spent.infra)];
  for (const [index, grants] of Object.entries(granted.rules)) {
    const rule = Number(index);
    list.push(entry({ rule }, grants, spent.rules[rule] ?? 0));
  }
  if (granted.ignored > 0 || spent.ignored > 0) list.push(entry('ignored', granted.ignored, spent.ignored));
  return list;
}

const SPENT_ON: Record<'limit' | 'infra' | 'ignored', string> = {
  limit: "the job's own failures",
  infra: 'infrastructure failures',
  ignored: 'ignore rules',
};

function budgetWords(b: BudgetLeft): string {
  const on = typeof b.budget === 'string' ? SPENT_ON[b.budget] : `rule ${b.budget.rule}'s own`;
  const count = b.granted === 0 ? 'none' : `${b.left} of ${b.granted}`;
  return `${count} from ${budgetName(b.budget)} (${on})`;
}

/** `run 3 under way; reruns left: 1 of 2 from limit (the job's own failures), 2 of 2 from infra (infrastructure failures)`. */
export function runWords(run: number, stage: RunCount['stage'], budgets: BudgetLeft[] | null): string {
  const where =
    stage === 'last'
      ? run === 0
        ? 'ended before any run'
        : `ended after run ${run}`
      : `run ${run} ${stage === 'under-way' ? 'under way' : 'next'}`;
  const left = budgets ? budgets.map(budgetWords).join(', ') : "not known (the job's spec is gone)";
  return `${where}; reruns left: ${left}`;
}

const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0;

/** The grants a worker published in the job's progress (JobProgress.budgets), or null when it has none. */
export function grantedFromProgress(progress: unknown): Granted | null {
  const budgets = (progress as { budgets?: unknown } | null)?.budgets;
  if (typeof budgets !== 'object' || budgets === null) return null;
  const { limit, infra, ignored, rules } = budgets as Record<string, unknown>;
  if (!isCount(limit) || !isCount(infra) || !isCount(ignored)) return null;
  if (typeof rules !== 'object' || rules === null) return null;
  const own: Record<number, number> = {};
  for (const [index, n] of Object.entries(rules)) {
    if (!/^\d+$/.test(index) || !isCount(n)) return null;
    own[Number(index)] = n;
  }
  return { limit, infra, ignored, rules: own };
}

/**
 * The grants of the job's spec and BullMQ options, as a worker would count them; null when the
 * data holds no readable `retry` (the worker refuses such a job as invalid). A worker's policy
 * may still lower an `infraLimit` taken from `attempts` (retry.maxInfraLimit): a worker that has
 * taken the job says its own grants in the job's progress.
 */
export function grantedFromSpec(data: unknown, options: LegacyRetryOptions): Granted | null {
  const { spec } = splitJobData(data);
  if (typeof spec !== 'object' || spec === null) return null;
  const retry = retrySchema.optional().safeParse((spec as { retry?: unknown }).retry);
  return retry.success ? grantedOf(effectiveRetry(retry.data, options)) : null;
}
