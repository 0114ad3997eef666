import { z } from 'zod';
import type { AttemptRecord, RerunBudget, RunReason } from './result.js';

/**
 * A job's retry rules: which of its own failures are worth another run, and how many. Two budgets
 * that never spend each other: `limit` for the job's own failures, `infraLimit` for the
 * infrastructure's. A rule may carry its own budget; `ignore` reruns without spending any, up to
 * RETRY_LIMITS.ignoredRuns. So a job runs at most 1 + limit + infraLimit + Σ rule limits + ignored.
 */
export const RETRY_LIMITS = {
  rules: 20,
  /** The most extra runs one budget may grant (the policy may cap it lower). */
  runs: 100,
  /** Reruns the `ignore` action grants in all, before the failure counts as one. */
  ignoredRuns: 10,
  delaySeconds: 24 * 3600,
} as const;

/**
 * The budget for infrastructure failures when a job names none and its BullMQ options carry no
 * `attempts` either: the client's `attempts: 3` of old, three runs in all.
 */
export const DEFAULT_INFRA_LIMIT = 2;

/** The default wait before a rerun: doubling from one second, as the client's backoff of old. */
export const DEFAULT_BACKOFF = { type: 'exponential', delaySeconds: 1 } as const;

/** The reasons a rule can match: every end of a run that is not a success, a cancel or a refusal. */
export const RULE_REASONS = ['oom', 'timeout', 'signalled', 'exited', 'image', 'infra'] as const;
export type RuleReason = (typeof RULE_REASONS)[number];

export const RETRY_ACTIONS = ['retry', 'fail', 'ignore', 'complete'] as const;
export type RetryAction = (typeof RETRY_ACTIONS)[number];

const budget = z
  .number()
  .int('must be a whole number')
  .min(0, 'must not be negative')
  .max(RETRY_LIMITS.runs, `must be at most ${RETRY_LIMITS.runs}`);

const exitCode = z
  .number()
  .int('must be a whole number')
  .min(1, 'must be between 1 and 255 (exit code 0 is a success, never a failure to match)')
  .max(255, 'must be between 1 and 255');

const exitCodes = z
  .union([
    z.array(exitCode).min(1, 'must name at least one exit code'),
    z
      .object({
        operator: z.enum(['In', 'NotIn']),
        values: z.array(exitCode).min(1, 'must name at least one exit code').max(255),
      })
      .strict(),
  ])
  .transform((codes) => (Array.isArray(codes) ? { operator: 'In' as const, values: codes } : codes));

const signalName = z.string().regex(/^SIG[A-Z0-9]+$/, 'must be a signal name such as "SIGKILL"');

const rule = z
  .object({
    onExitCodes: exitCodes.optional(),
    onSignals: z.array(signalName).min(1, 'must name at least one signal').max(64).optional(),
    onReasons: z.array(z.enum(RULE_REASONS)).min(1, 'must name at least one reason').optional(),
    action: z.enum(RETRY_ACTIONS),
    /** For `retry`: this rule's own budget instead of the job's `limit`. */
    limit: budget.optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    const matchers = [r.onExitCodes, r.onSignals, r.onReasons].filter((m) => m !== undefined).length;
    if (matchers !== 1) {
      ctx.addIssue({
        code: 'custom',
        message: `must have exactly one of onExitCodes, onSignals, onReasons (it has ${matchers})`,
      });
    }
    if (r.limit !== undefined && r.action !== 'retry') {
      ctx.addIssue({
        code: 'custom',
        path: ['limit'],
        message: `is only for action "retry", not "${r.action}"`,
      });
    }
  });

const backoff = z
  .object({
    type: z.enum(['fixed', 'exponential']),
    delaySeconds: z
      .number()
      .min(0, 'must not be negative')
      .max(RETRY_LIMITS.delaySeconds, `must be at most ${RETRY_LIMITS.delaySeconds}`),
    maxDelaySeconds: z
      .number()
      .positive('must be greater than 0')
      .max(RETRY_LIMITS.delaySeconds, `must be at most ${RETRY_LIMITS.delaySeconds}`)
      .optional(),
  })
  .strict()
  .refine(
    (b) => b.maxDelaySeconds === undefined || b.maxDelaySeconds >= b.delaySeconds,
    'maxDelaySeconds must not be less than delaySeconds',
  );

export const retrySchema = z
  .object({
    limit: budget.default(0),
    /** Absent: the job's BullMQ `attempts` option less one, else DEFAULT_INFRA_LIMIT (effectiveRetry). */
    infraLimit: budget.optional(),
    /** Absent: the job's BullMQ `backoff` option, else DEFAULT_BACKOFF (effectiveRetry). */
    backoff: backoff.optional(),
    rules: z.array(rule).max(RETRY_LIMITS.rules, `must have at most ${RETRY_LIMITS.rules} rules`).default([]),
  })
  .strict();

export type RetryInput = z.input<typeof retrySchema>;
/** The `retry` field as the spec holds it: `infraLimit` and `backoff` may still be unset. */
export type RetrySpec = z.output<typeof retrySchema>;
/** The rules a run is decided by: every budget known. */
export type Retry = Omit<RetrySpec, 'infraLimit' | 'backoff'> & {
  infraLimit: number;
  backoff: z.output<typeof backoff>;
};
export type RetryRule = Retry['rules'][number];

/** BullMQ's job options of old that the `retry` field took over (a producer may still set them). */
export interface LegacyRetryOptions {
  /** Tries in all: `attempts - 1` is the infrastructure budget when the spec names none. */
  attempts?: number;
  backoff?: number | { type: string; delay?: number };
}

function legacyBackoff(b: LegacyRetryOptions['backoff']): Retry['backoff'] | undefined {
  if (typeof b === 'number') return { type: 'fixed', delaySeconds: Math.max(0, b) / 1000 };
  if (b && (b.type === 'fixed' || b.type === 'exponential') && typeof b.delay === 'number')
    return { type: b.type, delaySeconds: Math.max(0, b.delay) / 1000 };
  return undefined;
}

/**
 * The rules a job runs under: its `retry` field, with what it leaves unset taken from BullMQ's
 * `attempts` and `backoff` options of old (so a job submitted with `attempts: 5` keeps its four
 * infrastructure reruns), else the defaults. `maxInfraLimit` clamps a budget that comes from
 * `attempts`: a spec's own `infraLimit` over the policy's cap is refused at admission instead.
 */
export function effectiveRetry(
  spec: RetrySpec | undefined,
  legacy: LegacyRetryOptions = {},
  maxInfraLimit: number = RETRY_LIMITS.runs,
): Retry {
  const fromAttempts =
    typeof legacy.attempts === 'number' && Number.isInteger(legacy.attempts) && legacy.attempts >= 1
      ? Math.min(legacy.attempts - 1, maxInfraLimit, RETRY_LIMITS.runs)
      : undefined;
  return {
    limit: spec?.limit ?? 0,
    rules: spec?.rules ?? [],
    infraLimit: spec?.infraLimit ?? fromAttempts ?? Math.min(DEFAULT_INFRA_LIMIT, maxInfraLimit),
    backoff: spec?.backoff ?? legacyBackoff(legacy.backoff) ?? { ...DEFAULT_BACKOFF },
  };
}

/** How one run ended, as far as the rules look at it. */
export interface RunEnd {
  reason: RunReason;
  exitCode: number | null;
  signal: string | null;
}

/** What earlier runs of this job have spent. */
export interface Spent {
  /** Reruns paid from `limit`. */
  limit: number;
  /** Reruns paid from `infraLimit`. */
  infra: number;
  /** Reruns granted by `ignore`. */
  ignored: number;
  /** Reruns paid from each rule's own limit, by rule index. */
  rules: Record<number, number>;
}

export const nothingSpent = (): Spent => ({ limit: 0, infra: 0, ignored: 0, rules: {} });

/** The reruns each budget of a job's rules grants: what `Spent` is counted against. */
export type Granted = Spent;

/**
 * What each budget grants under `retry`: `limit` and `infraLimit`; `ignored` only when a rule
 * says `ignore` (else nothing can spend it); a rule's own limit for each `retry` rule that has one.
 */
export function grantedOf(retry: Retry): Granted {
  const rules: Record<number, number> = {};
  retry.rules.forEach((r, index) => {
    if (r.action === 'retry' && r.limit !== undefined) rules[index] = r.limit;
  });
  const ignores = retry.rules.some((r) => r.action === 'ignore');
  return {
    limit: retry.limit,
    infra: retry.infraLimit,
    ignored: ignores ? RETRY_LIMITS.ignoredRuns : 0,
    rules,
  };
}

/** Which budget pays for a rerun. */
export type Budget = RerunBudget;

/** A budget as the history's `why` names it: `limit`, `infra`, `ignored`, `rules[N].limit`. */
export const budgetName = (budget: Budget): string =>
  typeof budget === 'string' ? budget : `rules[${budget.rule}].limit`;

/**
 * What the runs in a job's history have spent: each rerun the rules granted is recorded with the
 * budget that paid for it, so the history is the one ledger and nothing is counted twice.
 */
export function spentOf(history: readonly AttemptRecord[]): Spent {
  let spent = nothingSpent();
  for (const run of history) if (run.retried && run.budget) spent = spend(spent, run.budget);
  return spent;
}

/** Reruns the rules granted so far (each run after the first that a rule or budget paid for). */
export const rerunsOf = (spent: Spent): number =>
  spent.limit + spent.infra + spent.ignored + Object.values(spent.rules).reduce((a, b) => a + b, 0);

export type RetryDecision =
  /** Run again after `delayMs`, paid from `budget`. */
  | { action: 'retry'; budget: Budget; rule: number | null; delayMs: number; why: string }
  /** The run's end is the job's answer. */
  | { action: 'final'; rule: number | null; why: string }
  /** A matching `complete` rule: the job counts as a success. */
  | { action: 'complete'; rule: number; why: string };

function matches(r: RetryRule, end: RunEnd): boolean {
  if (r.onReasons) return (r.onReasons as readonly string[]).includes(end.reason);
  if (r.onSignals) return end.signal !== null && r.onSignals.includes(end.signal);
  if (r.onExitCodes) {
    if (end.exitCode === null || end.exitCode === 0) return false;
    const listed = r.onExitCodes.values.includes(end.exitCode);
    return r.onExitCodes.operator === 'In' ? listed : !listed;
  }
  return false;
}

/** The wait before rerun number `rerun` (1 for the first). */
export function backoffMs(b: Retry['backoff'], rerun: number): number {
  const base = b.delaySeconds * 1000;
  const raw = b.type === 'fixed' ? base : base * 2 ** Math.min(Math.max(rerun - 1, 0), 40);
  const cap = b.maxDelaySeconds === undefined ? RETRY_LIMITS.delaySeconds * 1000 : b.maxDelaySeconds * 1000;
  return Math.min(raw, cap);
}

const isSuccess = (end: RunEnd) => end.reason === 'exited' && end.exitCode === 0;

function describe(end: RunEnd): string {
  if (end.reason === 'exited') return `exit code ${end.exitCode}`;
  if (end.reason === 'signalled') return `signal ${end.signal ?? `exit code ${end.exitCode}`}`;
  return `reason ${end.reason}`;
}

function rerunFrom(
  retry: Retry,
  spent: Spent,
  budget: Budget,
  granted: number,
  used: number,
  rule: number | null,
  end: RunEnd,
): RetryDecision {
  const what = rule === null ? describe(end) : `${describe(end)} (rule ${rule})`;
  const name = budgetName(budget);
  if (used >= granted) return { action: 'final', rule, why: `${what}: ${name} of ${granted} spent` };
  const reruns = rerunsOf(spent);
  return {
    action: 'retry',
    budget,
    rule,
    delayMs: backoffMs(retry.backoff, reruns + 1),
    why: `${what}: rerun ${used + 1} of ${granted} from ${name}`,
  };
}

/**
 * What to do after a run ended: the first rule that matches decides; with none, the job's own
 * failures (a non-zero exit, a signal, an OOM) spend `limit`, infrastructure failures spend
 * `infraLimit`, and a timeout, an unavailable image, a cancel or an invalid job are final.
 */
export function decideRetry(retry: Retry, end: RunEnd, spent: Spent): RetryDecision {
  if (isSuccess(end)) return { action: 'final', rule: null, why: 'exit code 0' };
  if (end.reason === 'cancelled' || end.reason === 'invalid') {
    return { action: 'final', rule: null, why: `reason ${end.reason} is never retried` };
  }
  const index = retry.rules.findIndex((r) => matches(r, end));
  if (index >= 0) {
    const r = retry.rules[index] as RetryRule;
    switch (r.action) {
      case 'fail':
        return { action: 'final', rule: index, why: `${describe(end)}: rule ${index} says fail` };
      case 'complete':
        return { action: 'complete', rule: index, why: `${describe(end)}: rule ${index} says complete` };
      case 'ignore':
        return rerunFrom(retry, spent, 'ignored', RETRY_LIMITS.ignoredRuns, spent.ignored, index, end);
      case 'retry':
        return r.limit === undefined
          ? rerunFrom(retry, spent, 'limit', retry.limit, spent.limit, index, end)
          : rerunFrom(retry, spent, { rule: index }, r.limit, spent.rules[index] ?? 0, index, end);
    }
  }
  if (end.reason === 'infra')
    return rerunFrom(retry, spent, 'infra', retry.infraLimit, spent.infra, null, end);
  if (end.reason === 'timeout' || end.reason === 'image') {
    return { action: 'final', rule: null, why: `${describe(end)} is not retried without a rule` };
  }
  return rerunFrom(retry, spent, 'limit', retry.limit, spent.limit, null, end);
}

/** `spent` after a rerun paid from `budget`. */
export function spend(spent: Spent, budget: Budget): Spent {
  if (typeof budget !== 'string') {
    return { ...spent, rules: { ...spent.rules, [budget.rule]: (spent.rules[budget.rule] ?? 0) + 1 } };
  }
  return { ...spent, [budget]: spent[budget] + 1 };
}
