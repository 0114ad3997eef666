import { DelayedError, UnrecoverableError, WaitingError } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { ImageUnavailableError, InfrastructureError, MountChangedError } from '../../src/jobs/errors.js';
import { type AttemptRecord, type JobResult, resultWithoutRun } from '../../src/jobs/result.js';
import {
  effectiveRetry,
  nothingSpent,
  RETRY_LIMITS,
  type RetryInput,
  retrySchema,
  type Spent,
} from '../../src/jobs/retry.js';
import type { RunOutcome } from '../../src/worker/run/outcome.js';
import { lostLock, REROUTE_DELAY_MS, settle } from '../../src/worker/settlement.js';
import { stubRun } from '../helpers/run-harness.js';

const NOW = 1_700_000_000_000;
const RESULT = resultWithoutRun({
  jobId: 'job-1',
  data: {},
  state: 'Cancelled',
  reason: 'cancelled',
  attempt: 1,
  worker: { host: 'stub-host', id: 'worker-1' },
  error: { phase: 'admitted', message: 'cancelled before it ran' },
});
const ended = (outcome: Pick<RunOutcome, 'interruptedBy' | 'error'>) =>
  settle({ outcome, result: RESULT }, NOW);

describe('settle: how a take ends, as plain values', () => {
  it('a job for another runtime goes back delayed by REROUTE_DELAY_MS, with no attempt spent', () => {
    const settled = settle({ rerouted: true }, NOW);
    expect(settled).toMatchObject({ kind: 'rerouted', until: NOW + REROUTE_DELAY_MS });
    expect(settled.error).toBeInstanceOf(DelayedError);
  });

  it('a result with no error completes the job with that result and the decision on its run', () => {
    const settled = ended({ interruptedBy: null, error: null });
    expect(settled).toMatchObject({ kind: 'completed', result: { ...RESULT, attempts: [{}], rule: null } });
    expect(settled.kind === 'completed' && settled.result.attempts[0]).toMatchObject({
      retried: false,
      why: 'reason cancelled is never retried',
    });
  });

  it('a shutdown puts the job back to wait, its container stopped, noted in the history', () => {
    const settled = ended({ interruptedBy: 'shutdown', error: null });
    expect(settled).toMatchObject({
      kind: 'put-back',
      detached: false,
      note: 'worker shut down; container stopped, job put back without spending an attempt',
    });
    expect(settled.kind === 'put-back' && settled.error).toBeInstanceOf(WaitingError);
  });

  it('a detach puts the job back to wait with its container left running for the next worker', () => {
    const settled = ended({ interruptedBy: 'detach', error: null });
    expect(settled).toMatchObject({
      kind: 'put-back',
      detached: true,
      note: 'worker shut down; container left running for the next worker to adopt',
    });
    expect(settled.kind === 'put-back' && settled.error).toBeInstanceOf(WaitingError);
  });

  it('a shutdown wins over an error the stop caused: the job is put back, not failed', () => {
    const settled = ended({ interruptedBy: 'shutdown', error: new InfrastructureError('running', 'gone') });
    expect(settled.kind).toBe('put-back');
  });

  it('a lost lock fails this take with a plain Error naming why (BullMQ may retry; the new owner adopts)', () => {
    const settled = ended({ interruptedBy: 'lost-lock', error: null });
    const message = 'lost the job lock: another worker may own this job; container left for it to adopt';
    expect(settled).toMatchObject({ kind: 'lost-lock', note: message });
    expect(settled.kind === 'lost-lock' && settled.error).toEqual(new Error(message));
    expect(settled.kind === 'lost-lock' && settled.error).not.toBeInstanceOf(UnrecoverableError);
  });

  it('a fenced result write that found the lock gone is a lost lock too, saying no result was written', () => {
    const lost = lostLock(true);
    const message =
      'lost the job lock before writing its result: another worker may own this job; no result written';
    expect(lost).toMatchObject({ kind: 'lost-lock', note: message });
    expect(lost.error).toEqual(new Error(message));
  });

  it('an infrastructure error is retried from infraLimit, its message and the budget named, after the backoff', () => {
    const error = new InfrastructureError('starting', 'the engine did not answer');
    const failed = { ...RESULT, state: 'Failed' as const, reason: 'infra' as const };
    const settled = settle({ outcome: { interruptedBy: null, error }, result: failed }, NOW);
    expect(settled).toMatchObject({ kind: 'retried', delayMs: 1000 });
    expect(settled.kind === 'retried' && settled.error).not.toBeInstanceOf(UnrecoverableError);
    expect(settled.kind === 'retried' && settled.error.message).toBe(
      'starting: the engine did not answer (reason infra: rerun 1 of 2 from infra)',
    );
    expect(settled.kind === 'retried' && settled.result.attempts.at(-1)).toMatchObject({
      retried: true,
      budget: 'infra',
    });
  });

  it('an image that cannot be had fails for good, with its message', () => {
    const error = new ImageUnavailableError('cannot pull a:nope: manifest unknown');
    const settled = ended({ interruptedBy: null, error });
    expect(settled.kind).toBe('failed');
    expect(settled.kind === 'failed' && settled.error).toBeInstanceOf(UnrecoverableError);
    expect(settled.kind === 'failed' && settled.error.message).toBe(error.message);
  });

  it('a swapped mount fails for good, with its message', () => {
    const error = new MountChangedError('starting', 'mounts./data: /srv/data is not what admission checked');
    const settled = ended({ interruptedBy: null, error });
    expect(settled.kind === 'failed' && settled.error).toBeInstanceOf(UnrecoverableError);
    expect(settled.kind === 'failed' && settled.error.message).toBe(error.message);
  });
});

describe('settle over runs on the stub executor', () => {
  const settleRun = async (h: ReturnType<typeof stubRun>, act?: () => Promise<void>) => {
    const outcome = h.run();
    await act?.();
    const done = await outcome;
    return { done, settled: settle({ outcome: done, result: done.result }, NOW) };
  };

  it('a program that exits 0 completes with its result', async () => {
    const { done, settled } = await settleRun(stubRun());
    expect(settled).toMatchObject({ kind: 'completed', result: { ...done.result, attempts: [{}] } });
    expect(settled.kind === 'completed' && settled.result.attempts[0]?.why).toBe('exit code 0');
    expect(done.result).toMatchObject({ state: 'Complete', exitCode: 0 });
  });

  it('a non-zero exit is data: the job completes, with the exit code in its result', async () => {
    const { settled } = await settleRun(stubRun({}, { exitCode: 3 }));
    expect(settled).toMatchObject({ kind: 'completed', result: { state: 'Complete', exitCode: 3 } });
  });

  it('a cancel while running completes the job as Cancelled (never retried)', async () => {
    const h = stubRun({}, { runsUntilExited: true });
    const { settled } = await settleRun(h, async () => {
      await h.executor.reached('wait');
      h.stop.abort('cancelled');
    });
    expect(settled).toMatchObject({ kind: 'completed', result: { state: 'Cancelled', reason: 'cancelled' } });
  });

  it('an engine that fails the start fails the take with its error, for BullMQ to retry as the rules say', async () => {
    const failure = new InfrastructureError('starting', 'the engine did not answer');
    const { done, settled } = await settleRun(stubRun({}, { failures: { start: failure } }));
    expect(done.result).toMatchObject({ state: 'Failed', reason: 'infra' });
    expect(settled).toMatchObject({
      kind: 'retried',
      error: { message: expect.stringContaining(failure.message) },
    });
  });

  it('a program error with no class of its own still fails as the run’s first error, retried as infra', async () => {
    const { done, settled } = await settleRun(stubRun({}, { failures: { create: new Error('odd') } }));
    expect(settled.kind).toBe('retried');
    expect(settled.kind === 'retried' && settled.error.message).toMatch(/^odd \(reason infra/);
    expect(done.error).toBeInstanceOf(Error);
  });

  it('an image that cannot be had fails for good', async () => {
    const failure = new ImageUnavailableError('cannot pull a:nope: manifest unknown');
    const { settled } = await settleRun(stubRun({}, { failures: { loadImage: failure } }));
    expect(settled.kind === 'failed' && settled.error).toBeInstanceOf(UnrecoverableError);
    expect(settled.kind === 'failed' && settled.error.message).toBe(failure.message);
  });

  for (const [reason, detached] of [
    ['shutdown', false],
    ['detach', true],
  ] as const) {
    it(`a ${reason} while running puts the job back to wait (detached: ${detached})`, async () => {
      const h = stubRun({ stopGraceSeconds: 0.01 }, { runsUntilExited: true, capabilities: { adopt: true } });
      const { settled } = await settleRun(h, async () => {
        await h.executor.reached('wait');
        h.stop.abort(reason);
      });
      expect(settled).toMatchObject({ kind: 'put-back', detached });
      expect(settled.kind === 'put-back' && settled.error).toBeInstanceOf(WaitingError);
    });
  }

  it('a lost lock while running settles as lost-lock', async () => {
    const h = stubRun({}, { runsUntilExited: true, capabilities: { adopt: true } });
    const { settled } = await settleRun(h, async () => {
      await h.executor.reached('wait');
      h.stop.abort('lost-lock');
    });
    expect(settled.kind).toBe('lost-lock');
  });

  it('a shutdown after the program exited by itself leaves the result: the job completes', async () => {
    const h = stubRun({}, { holds: ['finalUsage'] });
    const { settled } = await settleRun(h, async () => {
      await h.executor.reached('finalUsage');
      h.stop.abort('shutdown');
      h.executor.release('finalUsage');
    });
    expect(settled).toMatchObject({ kind: 'completed', result: { state: 'Complete', exitCode: 0 } });
  });
});

describe('settle under the job’s retry rules', () => {
  const plan = (retry: RetryInput, spent: Spent = nothingSpent()) => ({
    retry: effectiveRetry(retrySchema.parse(retry)),
    spent,
  });
  const ran = (fields: Partial<JobResult>): JobResult => {
    const result = { ...RESULT, state: 'Complete' as const, reason: 'exited' as const, ...fields };
    const own = { ...(RESULT.attempts[0] as AttemptRecord), state: result.state, reason: result.reason };
    return { ...result, attempts: [own] };
  };
  const clean = { interruptedBy: null, error: null };

  it('reruns exit 75 under an onExitCodes retry rule, paid from limit, after the backoff', () => {
    const p = plan({
      limit: 2,
      backoff: { type: 'fixed', delaySeconds: 5 },
      rules: [{ onExitCodes: [75], action: 'retry' }],
    });
    const settled = settle({ outcome: clean, result: ran({ exitCode: 75 }) }, NOW, p);
    expect(settled).toMatchObject({ kind: 'retried', delayMs: 5000 });
    expect(settled.kind === 'retried' && settled.result.attempts.at(-1)).toMatchObject({
      rule: { index: 0, action: 'retry' },
      retried: true,
      budget: 'limit',
      why: 'exit code 75 (rule 0): rerun 1 of 2 from limit',
    });
    // The budget spent: the run is the job's answer, and its entry says so.
    const last = settle({ outcome: clean, result: ran({ exitCode: 75 }) }, NOW, {
      ...p,
      spent: { ...nothingSpent(), limit: 2 },
    });
    expect(last).toMatchObject({ kind: 'completed', result: { state: 'Complete', exitCode: 75 } });
  });

  it('fails an OOM at once under an onReasons fail rule, whatever the limit', () => {
    const p = plan({ limit: 5, rules: [{ onReasons: ['oom'], action: 'fail' }] });
    const settled = settle(
      { outcome: clean, result: ran({ reason: 'oom', exitCode: 137, signal: 'SIGKILL', oomKilled: true }) },
      NOW,
      p,
    );
    expect(settled).toMatchObject({
      kind: 'completed',
      result: { reason: 'oom', rule: { index: 0, action: 'fail' } },
    });
  });

  it('a complete rule makes a timeout a success, noted in the result', () => {
    const p = plan({ rules: [{ onReasons: ['timeout'], action: 'complete' }] });
    const settled = settle(
      { outcome: clean, result: ran({ state: 'Cancelled', reason: 'timeout' }) },
      NOW,
      p,
    );
    expect(settled).toMatchObject({
      kind: 'completed',
      result: { state: 'Complete', reason: 'timeout', rule: { index: 0, action: 'complete' } },
    });
    expect(settled.kind === 'completed' && settled.result.attempts.at(-1)?.state).toBe('Complete');
  });

  it('ignore reruns without spending a budget, up to its cap', () => {
    const p = plan({ rules: [{ onExitCodes: { operator: 'NotIn', values: [1] }, action: 'ignore' }] });
    const first = settle({ outcome: clean, result: ran({ exitCode: 9 }) }, NOW, p);
    expect(first.kind === 'retried' && first.result.attempts.at(-1)?.budget).toBe('ignored');
    const capped = settle({ outcome: clean, result: ran({ exitCode: 9 }) }, NOW, {
      ...p,
      spent: { ...nothingSpent(), ignored: RETRY_LIMITS.ignoredRuns },
    });
    expect(capped.kind).toBe('completed');
    // NotIn: the listed code does not match, and with limit 0 it is the answer.
    expect(settle({ outcome: clean, result: ran({ exitCode: 1 }) }, NOW, p).kind).toBe('completed');
  });

  it('an infrastructure failure with limit 0 is retried from infraLimit, limit untouched', () => {
    const failure = new InfrastructureError('running', 'container stopped from outside');
    const settled = settle(
      { outcome: { interruptedBy: null, error: failure }, result: ran({ state: 'Failed', reason: 'infra' }) },
      NOW,
      plan({ limit: 0 }),
    );
    expect(settled.kind === 'retried' && settled.result.attempts.at(-1)?.budget).toBe('infra');
  });

  it('a spent infraLimit fails the job for good, and its entry says why', () => {
    const failure = new InfrastructureError('running', 'gone');
    const settled = settle(
      { outcome: { interruptedBy: null, error: failure }, result: ran({ state: 'Failed', reason: 'infra' }) },
      NOW,
      plan({ infraLimit: 1 }, { ...nothingSpent(), infra: 1 }),
    );
    expect(settled.kind === 'failed' && settled.error).toBeInstanceOf(UnrecoverableError);
    expect(settled.kind === 'failed' && settled.result.attempts.at(-1)?.why).toBe(
      'reason infra: infra of 1 spent',
    );
  });
});
