import { describe, expect, it } from 'vitest';
import {
  backoffMs,
  DEFAULT_BACKOFF,
  DEFAULT_INFRA_LIMIT,
  decideRetry,
  effectiveRetry,
  nothingSpent,
  RETRY_LIMITS,
  type Retry,
  type RetryInput,
  type RunEnd,
  retrySchema,
  type Spent,
  spend,
} from '../../src/jobs/retry.js';
import { runTimeout, timeoutsSchema } from '../../src/jobs/timeouts.js';

const retry = (input: RetryInput = {}): Retry => effectiveRetry(retrySchema.parse(input));
const exited = (exitCode: number): RunEnd => ({ reason: 'exited', exitCode, signal: null });
const ended = (reason: RunEnd['reason'], signal: string | null = null): RunEnd => ({
  reason,
  exitCode: signal === 'SIGKILL' ? 137 : null,
  signal,
});

/** Runs a job whose runs end as `ends` says (the last end repeats) until a decision is final. */
function runs(
  r: Retry,
  ends: RunEnd[],
): { count: number; last: ReturnType<typeof decideRetry>; spent: Spent } {
  let spent = nothingSpent();
  for (let count = 1; ; count++) {
    const end = ends[Math.min(count - 1, ends.length - 1)] as RunEnd;
    const last = decideRetry(r, end, spent);
    if (last.action !== 'retry') return { count, last, spent };
    spent = spend(spent, last.budget);
  }
}

const issuesOf = (input: unknown) => {
  const parsed = retrySchema.safeParse(input);
  return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('retry rules: parsing', () => {
  it('defaults to today: no retry of the job’s own failures, two infrastructure reruns', () => {
    expect(retry()).toEqual({
      limit: 0,
      infraLimit: 2,
      backoff: { type: 'exponential', delaySeconds: 1 },
      rules: [],
    });
  });

  it('reads a plain exit-code list as In', () => {
    expect(retry({ rules: [{ onExitCodes: [75], action: 'retry' }] }).rules[0]?.onExitCodes).toEqual({
      operator: 'In',
      values: [75],
    });
  });

  it.each([
    [{ rules: [{ onReasons: ['bored'], action: 'retry' }] }, /rules\.0\.onReasons\.0: Invalid option/],
    [
      { rules: [{ onReasons: ['oom'], onExitCodes: [1], action: 'fail' }] },
      /rules\.0: must have exactly one of onExitCodes, onSignals, onReasons \(it has 2\)/,
    ],
    [{ rules: [{ action: 'fail' }] }, /rules\.0: must have exactly one .* \(it has 0\)/],
    [{ limit: -1 }, /limit: must not be negative/],
    [
      { rules: Array.from({ length: 21 }, () => ({ onExitCodes: [1], action: 'retry' })) },
      /rules: must have at most 20/,
    ],
    [
      { rules: [{ onExitCodes: [0], action: 'retry' }] },
      /rules\.0\.onExitCodes\.0: must be between 1 and 255 \(exit code 0/,
    ],
    [
      { rules: [{ onExitCodes: { operator: 'In', values: [256] } }] },
      /onExitCodes\.values\.0: must be between 1 and 255/,
    ],
    [{ rules: [{ onSignals: ['KILL'], action: 'fail' }] }, /onSignals\.0: must be a signal name/],
    [
      { rules: [{ onReasons: ['oom'], action: 'fail', limit: 2 }] },
      /rules\.0\.limit: is only for action "retry"/,
    ],
    [
      { backoff: { type: 'fixed', delaySeconds: 10, maxDelaySeconds: 5 } },
      /maxDelaySeconds must not be less/,
    ],
    [{ retries: 3 }, /Unrecognized key/],
  ])('refuses %j, naming the field', (input, message) => {
    expect(issuesOf(input).join('\n')).toMatch(message);
  });
});

describe('retry rules: the budgets a job runs under', () => {
  it('takes infraLimit and backoff from BullMQ’s attempts and backoff of old when the spec has none', () => {
    expect(effectiveRetry(undefined, { attempts: 5, backoff: 3000 })).toMatchObject({
      limit: 0,
      infraLimit: 4,
      backoff: { type: 'fixed', delaySeconds: 3 },
    });
    expect(
      effectiveRetry(undefined, { attempts: 1, backoff: { type: 'exponential', delay: 500 } }),
    ).toMatchObject({
      infraLimit: 0,
      backoff: { type: 'exponential', delaySeconds: 0.5 },
    });
    expect(effectiveRetry(undefined, {})).toMatchObject({
      infraLimit: DEFAULT_INFRA_LIMIT,
      backoff: DEFAULT_BACKOFF,
    });
  });

  it('lets the spec win over the options of old, and clamps only a budget taken from attempts to the cap', () => {
    const spec = retrySchema.parse({ infraLimit: 7, backoff: { type: 'fixed', delaySeconds: 2 } });
    expect(effectiveRetry(spec, { attempts: 2, backoff: 10 }, 3)).toMatchObject({
      infraLimit: 7,
      backoff: { type: 'fixed', delaySeconds: 2 },
    });
    expect(effectiveRetry(undefined, { attempts: 50 }, 3).infraLimit).toBe(3);
  });
});

describe('retry rules: deciding', () => {
  it('keeps today’s behaviour without rules: a non-zero exit is final, infrastructure reruns twice', () => {
    expect(runs(retry(), [exited(1)]).count).toBe(1);
    expect(runs(retry(), [ended('infra')])).toMatchObject({ count: 3, last: { action: 'final' } });
    expect(runs(retry(), [ended('timeout')]).count).toBe(1);
    expect(runs(retry(), [ended('image')]).count).toBe(1);
    expect(runs(retry({ limit: 5 }), [ended('cancelled')]).count).toBe(1);
    expect(runs(retry({ limit: 5 }), [ended('invalid')]).count).toBe(1);
    expect(decideRetry(retry({ limit: 5 }), exited(0), nothingSpent()).action).toBe('final');
  });

  it('retries exit 75 under an onExitCodes rule until a run succeeds', () => {
    const r = retry({ limit: 2, rules: [{ onExitCodes: [75], action: 'retry' }] });
    const { count, last } = runs(r, [exited(75), exited(75), exited(0)]);
    expect(count).toBe(3);
    expect(last).toMatchObject({ action: 'final', why: 'exit code 0' });
  });

  it('fails an OOM at once under an onReasons fail rule, whatever the limit', () => {
    const r = retry({ limit: 5, rules: [{ onReasons: ['oom'], action: 'fail' }] });
    expect(runs(r, [ended('oom', 'SIGKILL')])).toMatchObject({
      count: 1,
      last: { action: 'final', rule: 0 },
    });
  });

  it('matches NotIn on every failing exit code but the listed ones, never on 0', () => {
    const r = retry({
      limit: 1,
      rules: [{ onExitCodes: { operator: 'NotIn', values: [2] }, action: 'fail' }],
    });
    expect(decideRetry(r, exited(3), nothingSpent())).toMatchObject({ action: 'final', rule: 0 });
    expect(decideRetry(r, exited(2), nothingSpent())).toMatchObject({ action: 'retry', rule: null });
    expect(decideRetry(r, exited(0), nothingSpent())).toMatchObject({ action: 'final', rule: null });
  });

  it('counts a complete rule as a success, naming the rule', () => {
    const r = retry({ rules: [{ onSignals: ['SIGTERM'], action: 'complete' }] });
    expect(decideRetry(r, ended('signalled', 'SIGTERM'), nothingSpent())).toMatchObject({
      action: 'complete',
      rule: 0,
    });
  });

  it('stops ignore at its documented cap, spending no budget', () => {
    const r = retry({ rules: [{ onExitCodes: [9], action: 'ignore' }] });
    const { count, spent } = runs(r, [exited(9)]);
    expect(count).toBe(RETRY_LIMITS.ignoredRuns + 1);
    expect(spent).toEqual({ limit: 0, infra: 0, ignored: RETRY_LIMITS.ignoredRuns, rules: {} });
  });

  it('retries infrastructure failures with a job budget of 0 and leaves that budget untouched', () => {
    const { spent } = runs(retry({ limit: 0, infraLimit: 2 }), [ended('infra'), exited(1)]);
    expect(spent).toEqual({ limit: 0, infra: 1, ignored: 0, rules: {} });
  });

  it('pays a rule’s own limit from that rule only, so budgets add up exactly', () => {
    const r = retry({
      limit: 1,
      infraLimit: 1,
      rules: [
        { onExitCodes: [3], action: 'retry', limit: 2 },
        { onExitCodes: [4], action: 'retry' },
      ],
    });
    const { count, spent } = runs(r, [exited(3), exited(3), ended('infra'), exited(4), exited(3), exited(4)]);
    expect(spent).toEqual({ limit: 1, infra: 1, ignored: 0, rules: { 0: 2 } });
    expect(count).toBe(1 + 1 + 1 + 2);
  });

  it('uses the first rule that matches', () => {
    const r = retry({
      limit: 3,
      rules: [
        { onReasons: ['signalled'], action: 'fail' },
        { onSignals: ['SIGKILL'], action: 'retry' },
      ],
    });
    expect(decideRetry(r, ended('signalled', 'SIGKILL'), nothingSpent())).toMatchObject({
      action: 'final',
      rule: 0,
    });
  });

  it('waits fixed or doubling delays, capped', () => {
    expect([1, 2, 3].map((n) => backoffMs({ type: 'fixed', delaySeconds: 2 }, n))).toEqual([
      2000, 2000, 2000,
    ]);
    expect(
      [1, 2, 3, 4].map((n) => backoffMs({ type: 'exponential', delaySeconds: 1, maxDelaySeconds: 5 }, n)),
    ).toEqual([1000, 2000, 4000, 5000]);
  });
});

describe('timeouts', () => {
  it('names the field and the problem', () => {
    const parsed = timeoutsSchema.safeParse({ queueSeconds: 0, noOutput: 5 });
    expect(parsed.success).toBe(false);
    const text = parsed.success
      ? ''
      : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n');
    expect(text).toMatch(/queueSeconds: must be greater than 0/);
    expect(text).toMatch(/noOutput/);
  });

  it('takes runSeconds or its old name maxRunTimeSeconds, and refuses two that disagree', () => {
    expect(runTimeout({ runSeconds: 5 }, undefined)).toEqual({ seconds: 5 });
    expect(runTimeout(undefined, 7)).toEqual({ seconds: 7 });
    expect(runTimeout({ runSeconds: 5 }, 5)).toEqual({ seconds: 5 });
    expect(runTimeout({ runSeconds: 5 }, 7)).toMatchObject({ problem: expect.stringMatching(/disagree/) });
  });
});
