import { DelayedError, UnrecoverableError, WaitingError } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { ImageUnavailableError, InfrastructureError, MountChangedError } from '../../src/jobs/errors.js';
import { resultWithoutRun } from '../../src/jobs/result.js';
import type { RunOutcome } from '../../src/worker/run/run.js';
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

  it('a result with no error completes the job with that very result', () => {
    expect(ended({ interruptedBy: null, error: null })).toEqual({ kind: 'completed', result: RESULT });
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

  it('an infrastructure error is thrown as it is, so BullMQ retries it with backoff', () => {
    const error = new InfrastructureError('starting', 'the engine did not answer');
    expect(ended({ interruptedBy: null, error })).toEqual({ kind: 'failed', error });
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
    expect(settled).toEqual({ kind: 'completed', result: done.result });
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

  it('an engine that fails the start fails the take with its error, for BullMQ to retry', async () => {
    const failure = new InfrastructureError('starting', 'the engine did not answer');
    const { done, settled } = await settleRun(stubRun({}, { failures: { start: failure } }));
    expect(done.result).toMatchObject({ state: 'Failed', reason: 'infra' });
    expect(settled).toEqual({ kind: 'failed', error: failure });
  });

  it('a program error with no class of its own still fails as the run’s first error', async () => {
    const { done, settled } = await settleRun(stubRun({}, { failures: { create: new Error('odd') } }));
    expect(settled.kind).toBe('failed');
    expect(settled.kind === 'failed' && settled.error).toBe(done.error);
    expect(done.error).toBeInstanceOf(Error);
    expect(done.error).not.toBeInstanceOf(UnrecoverableError);
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
