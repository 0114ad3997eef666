import { DelayedError, UnrecoverableError, WaitingError } from 'bullmq';
import type { AttemptRecord, JobResult, MatchedRule } from '../jobs/result.js';
import { decideRetry, effectiveRetry, nothingSpent, type Retry, type Spent } from '../jobs/retry.js';
import type { RunOutcome } from './run/outcome.js';

/** How soon a job for another runtime is offered again (to whichever worker takes it next). */
export const REROUTE_DELAY_MS = 1_000;

/** How one take of a job ended: handed back at admission, or a run with its result. */
export type TakeEnd =
  | { rerouted: true }
  | { outcome: Pick<RunOutcome, 'interruptedBy' | 'error'>; result: JobResult };

/**
 * What the processor tells BullMQ, and what it does first. BullMQ reads a thrown DelayedError or
 * WaitingError as "moved, not failed" (no attempt spent) and an UnrecoverableError as "failed,
 * never retried"; a returned value completes the job.
 */
export type Settlement =
  /** Another live worker runs the runtime the job asks for: back to the queue, delayed until `until`. */
  | { kind: 'rerouted'; until: number; error: DelayedError }
  /**
   * The worker shuts down: the container is released (stopped) or left (detach) first, so nobody
   * adopts its exit code, the run goes into the job's history with `note`, and the job back to wait.
   */
  | { kind: 'put-back'; detached: boolean; note: string; error: WaitingError }
  /** Another worker may own the job now: its container is left for it; the run goes into the history. */
  | { kind: 'lost-lock'; note: string; error: Error }
  /**
   * The rules grant another run: `result`'s last entry says which budget pays and why; it goes
   * into the history, and BullMQ retries the job after `delayMs` (failing this take with `error`).
   */
  | { kind: 'retried'; result: JobResult; delayMs: number; error: Error }
  /**
   * The end is final and has no result to return (an infrastructure failure whose budget is
   * spent, an image that cannot be had, a swapped mount): the result goes to its side key and
   * BullMQ fails the job for good.
   */
  | { kind: 'failed'; result: JobResult; error: UnrecoverableError }
  /** A result (Complete, Cancelled, or Failed as data): BullMQ stores it as the return value. */
  | { kind: 'completed'; result: JobResult };

/** The job's retry rules, and what its earlier runs spent (from its history). */
export interface RetryPlan {
  retry: Retry;
  spent: Spent;
}

/** A job without a `retry` field and without BullMQ options: today's defaults. */
export const DEFAULT_PLAN: RetryPlan = { retry: effectiveRetry(undefined), spent: nothingSpent() };

type Rerouted = Extract<Settlement, { kind: 'rerouted' }>;
type LostLock = Extract<Settlement, { kind: 'lost-lock' }>;

/**
 * The answer for a run that no longer owns its job: it saw the lock go (lockRenewalFailed), or
 * its fenced result write found the lock gone or another worker's (`atWrite`). It writes no result.
 */
export function lostLock(atWrite = false): LostLock {
  const note = atWrite
    ? 'lost the job lock before writing its result: another worker may own this job; no result written'
    : 'lost the job lock: another worker may own this job; container left for it to adopt';
  return { kind: 'lost-lock', note, error: new Error(note) };
}

/**
 * The one mapping from how a take ended to BullMQ's answer; pure, so every case has a unit test.
 * A run that ended on its own (or failed) is decided by the job's retry rules (decideRetry).
 */
export function settle(end: Extract<TakeEnd, { rerouted: true }>, now: number, plan?: RetryPlan): Rerouted;
export function settle(
  end: Exclude<TakeEnd, { rerouted: true }>,
  now: number,
  plan?: RetryPlan,
): Exclude<Settlement, Rerouted>;
export function settle(end: TakeEnd, now: number, plan?: RetryPlan): Settlement;
export function settle(end: TakeEnd, now: number, plan: RetryPlan = DEFAULT_PLAN): Settlement {
  if ('rerouted' in end)
    return { kind: 'rerouted', until: now + REROUTE_DELAY_MS, error: new DelayedError() };
  const { outcome, result } = end;
  if (outcome.interruptedBy === 'shutdown' || outcome.interruptedBy === 'detach') {
    const detached = outcome.interruptedBy === 'detach';
    const note = detached
      ? 'worker shut down; container left running for the next worker to adopt'
      : 'worker shut down; container stopped, job put back without spending an attempt';
    return { kind: 'put-back', detached, note, error: new WaitingError() };
  }
  if (outcome.interruptedBy === 'lost-lock') return lostLock();
  const decision = decideRetry(
    plan.retry,
    { reason: result.reason, exitCode: result.exitCode, signal: result.signal },
    plan.spent,
  );
  const rule: MatchedRule | null =
    decision.rule === null
      ? null
      : { index: decision.rule, action: plan.retry.rules[decision.rule]?.action ?? 'retry' };
  const retried = decision.action === 'retry';
  const noted = withDecision(result, {
    rule,
    retried,
    why: decision.why,
    budget: decision.action === 'retry' ? decision.budget : null,
  });
  if (decision.action === 'retry') {
    const message = outcome.error ? `${outcome.error.message} (${decision.why})` : decision.why;
    return { kind: 'retried', result: noted, delayMs: decision.delayMs, error: new Error(message) };
  }
  if (decision.action === 'complete') {
    const own = noted.attempts.at(-1) as AttemptRecord;
    const attempts = [...noted.attempts.slice(0, -1), { ...own, state: 'Complete' as const }];
    return { kind: 'completed', result: { ...noted, state: 'Complete', attempts } };
  }
  // Failed with no exit code: an error, which BullMQ must not retry on its own.
  if (outcome.error) {
    return { kind: 'failed', result: noted, error: new UnrecoverableError(outcome.error.message) };
  }
  return { kind: 'completed', result: noted };
}

/** The result with the decision on its last run: in that run's history entry, and the rule at the top. */
function withDecision(
  result: JobResult,
  decision: Pick<AttemptRecord, 'rule' | 'retried' | 'why' | 'budget'>,
): JobResult {
  const own = result.attempts.at(-1);
  const attempts = own ? [...result.attempts.slice(0, -1), { ...own, ...decision }] : result.attempts;
  return { ...result, attempts, rule: decision.rule ?? null };
}
