import { describe, expect, it } from 'vitest';
import type { AttemptRecord, RerunBudget } from '../../src/jobs/result.js';
import { effectiveRetry, grantedOf, RETRY_LIMITS, retrySchema } from '../../src/jobs/retry.js';
import { grantedFromProgress, grantedFromSpec, type RunFacts, runCount } from '../../src/jobs/run-count.js';
import { SIGNATURE_FIELD } from '../../src/jobs/signing.js';

/** A run that ended and ran again, paid from `budget` (null: a shutdown or a lost worker, paid by none). */
const rerun = (attempt: number, budget: RerunBudget | null): AttemptRecord => ({
  attempt,
  worker: 'w1',
  state: budget === 'infra' || budget === null ? 'Failed' : 'Complete',
  reason: budget === 'infra' || budget === null ? 'infra' : 'exited',
  error: null,
  retried: true,
  budget,
});
const last = (attempt: number): AttemptRecord => ({
  attempt,
  worker: 'w1',
  state: 'Complete',
  reason: 'exited',
  error: null,
  exitCode: 0,
  retried: false,
  budget: null,
});

/** `retry: { limit: 2, infraLimit: 3, rules: [{ onExitCodes: [75], action: retry }] }`. */
const RULES = grantedOf(
  effectiveRetry(
    retrySchema.parse({ limit: 2, infraLimit: 3, rules: [{ onExitCodes: [75], action: 'retry' }] }),
  ),
);

const facts = (extra: Partial<RunFacts>): RunFacts => ({
  state: 'waiting',
  attemptsMade: 0,
  history: [],
  result: null,
  granted: RULES,
  ...extra,
});

describe('what each budget grants', () => {
  it('grants limit and infraLimit, a retry rule its own limit, and ignore reruns only where a rule ignores', () => {
    const retry = effectiveRetry(
      retrySchema.parse({
        limit: 1,
        infraLimit: 4,
        rules: [
          { onExitCodes: [2], action: 'fail' },
          { onSignals: ['SIGTERM'], action: 'retry', limit: 5 },
          { onExitCodes: [143], action: 'ignore' },
          { onExitCodes: [75], action: 'retry' },
        ],
      }),
    );
    expect(grantedOf(retry)).toEqual({
      limit: 1,
      infra: 4,
      ignored: RETRY_LIMITS.ignoredRuns,
      rules: { 1: 5 },
    });
    expect(grantedOf(effectiveRetry(undefined))).toEqual({ limit: 0, infra: 2, ignored: 0, rules: {} });
  });
});

describe('where the runs stand', () => {
  it('a job no worker has taken waits for run 1 with every budget whole', () => {
    expect(runCount(facts({}))).toEqual({
      run: 1,
      stage: 'next',
      budgets: [
        { budget: 'limit', granted: 2, spent: 0, left: 2 },
        { budget: 'infra', granted: 3, spent: 0, left: 3 },
      ],
      message:
        "run 1 next; reruns left: 2 of 2 from limit (the job's own failures), 3 of 3 from infra (infrastructure failures)",
    });
  });

  it('run 3 under way after two exits 75: one rerun of limit left, infrastructure untouched', () => {
    const count = runCount(
      facts({ state: 'active', attemptsMade: 2, history: [rerun(1, 'limit'), rerun(2, 'infra')] }),
    );
    expect(count.run).toBe(3);
    expect(count.message).toBe(
      "run 3 under way; reruns left: 1 of 2 from limit (the job's own failures), 2 of 3 from infra (infrastructure failures)",
    );
  });

  it('backing off after run 1: run 2 is next, and its rerun is already paid', () => {
    const count = runCount(facts({ state: 'delayed', attemptsMade: 1, history: [rerun(1, 'limit')] }));
    expect(count).toMatchObject({ run: 2, stage: 'next' });
    expect(count.budgets?.[0]).toEqual({ budget: 'limit', granted: 2, spent: 1, left: 1 });
  });

  it('a run settled before BullMQ counted it (its worker died in between) is not counted twice', () => {
    // BullMQ still says 0 runs ended; the history holds run 1's settled rerun: the take is run 2.
    const count = runCount(facts({ state: 'active', attemptsMade: 0, history: [rerun(1, 'limit')] }));
    expect(count.run).toBe(2);
    expect(count.budgets?.[0]?.spent).toBe(1);
  });

  it('a run cut short (shutdown, lost worker) runs again under its number and spends nothing', () => {
    const count = runCount(facts({ state: 'waiting', attemptsMade: 0, history: [rerun(1, null)] }));
    expect(count.run).toBe(1);
    expect(count.budgets?.map((b) => b.spent)).toEqual([0, 0]);
  });

  it('a finished job counts by its result: its run and its whole history', () => {
    const result = { attempt: 3, attempts: [rerun(1, 'limit'), rerun(2, 'limit'), last(3)] };
    const count = runCount(
      facts({ state: 'completed', attemptsMade: 3, history: result.attempts.slice(0, 2), result }),
    );
    expect(count).toMatchObject({ run: 3, stage: 'last' });
    expect(count.message).toBe(
      "ended after run 3; reruns left: 0 of 2 from limit (the job's own failures), 3 of 3 from infra (infrastructure failures)",
    );
  });

  it('a finished job without a result takes the run its last take started (BullMQ counted that take)', () => {
    const count = runCount(
      facts({ state: 'failed', attemptsMade: 3, history: [rerun(1, 'infra'), rerun(2, 'infra')] }),
    );
    expect(count.run).toBe(3);
    expect(count.budgets?.[1]).toEqual({ budget: 'infra', granted: 3, spent: 2, left: 1 });
  });

  it('a job that ended in the queue ended before any run', () => {
    const count = runCount(facts({ state: 'completed', result: { attempt: 0, attempts: [] } }));
    expect(count.message).toMatch(/^ended before any run; /);
  });

  it('names every budget as the history does: a rule of its own, ignore reruns; none for a budget of 0', () => {
    const granted = { limit: 0, infra: 2, ignored: RETRY_LIMITS.ignoredRuns, rules: { 1: 5 } };
    const history = [rerun(1, { rule: 1 }), rerun(2, 'ignored'), rerun(3, { rule: 1 })];
    const count = runCount(facts({ state: 'active', attemptsMade: 3, history, granted }));
    expect(count.budgets).toEqual([
      { budget: 'limit', granted: 0, spent: 0, left: 0 },
      { budget: 'infra', granted: 2, spent: 0, left: 2 },
      { budget: { rule: 1 }, granted: 5, spent: 2, left: 3 },
      { budget: 'ignored', granted: 10, spent: 1, left: 9 },
    ]);
    expect(count.message).toBe(
      "run 4 under way; reruns left: none from limit (the job's own failures), 2 of 2 from infra (infrastructure failures), 3 of 5 from rules[1].limit (rule 1's own), 9 of 10 from ignored (ignore rules)",
    );
  });

  it('says so when the rules are not known', () => {
    const count = runCount(facts({ state: 'failed', granted: null, result: { attempt: 2, attempts: [] } }));
    expect(count.budgets).toBeNull();
    expect(count.message).toBe("ended after run 2; reruns left: not known (the job's spec is gone)");
  });
});

describe('where the grants come from', () => {
  it("takes a worker's grants from its progress, as JSON left them, and nothing malformed", () => {
    const progress = JSON.parse(
      JSON.stringify({ phase: 'running', budgets: { limit: 2, infra: 10, ignored: 0, rules: { 3: 4 } } }),
    );
    expect(grantedFromProgress(progress)).toEqual({ limit: 2, infra: 10, ignored: 0, rules: { 3: 4 } });
    expect(grantedFromProgress({ phase: 'running' })).toBeNull();
    expect(grantedFromProgress(null)).toBeNull();
    expect(grantedFromProgress({ budgets: { limit: -1, infra: 1, ignored: 0, rules: {} } })).toBeNull();
    expect(grantedFromProgress({ budgets: { limit: 1, infra: 1, ignored: 0, rules: { x: 1 } } })).toBeNull();
  });

  it('reads them from the spec and BullMQ options of a job no worker has taken, signed or not', () => {
    const spec = {
      image: 'x',
      retry: { limit: 2, rules: [{ onExitCodes: [75], action: 'retry', limit: 4 }] },
    };
    expect(grantedFromSpec(spec, { attempts: 6 })).toEqual({
      limit: 2,
      infra: 5,
      ignored: 0,
      rules: { 0: 4 },
    });
    expect(grantedFromSpec({ image: 'x' }, {})).toEqual({ limit: 0, infra: 2, ignored: 0, rules: {} });
    expect(
      grantedFromSpec({ image: 'x', retry: { infraLimit: 1 }, [SIGNATURE_FIELD]: {} }, { attempts: 9 }),
    ).toEqual({ limit: 0, infra: 1, ignored: 0, rules: {} });
    expect(grantedFromSpec({ image: 'x', retry: { limit: -1 } }, {})).toBeNull();
    expect(grantedFromSpec(undefined, {})).toBeNull();
  });
});
