import { describe, expect, it } from 'vitest';
import type { AttemptRecord, JobResult } from '../../src/jobs/result.js';
import { lostRun, thisRun, withEarlierRuns } from '../../src/worker/recovery/history.js';

const run = (worker: string, attempt: number, error: string | null = null): AttemptRecord => ({
  attempt,
  worker,
  state: 'Failed',
  reason: 'infra',
  error,
});

describe('lost runs', () => {
  it('is the run the progress names when the history does not end with it', () => {
    expect(lostRun({ phase: 'running', attempt: 1, worker: 'doomed' }, [])).toEqual({
      attempt: 1,
      worker: 'doomed',
      state: 'Failed',
      reason: 'infra',
      error: 'worker lost while running; its container was gone, so the job ran again',
    });
    expect(lostRun({ phase: 'creating', attempt: 2, worker: 'b' }, [run('a', 1)])?.worker).toBe('b');
  });

  it('is none when the run recorded its own end, or nothing ran yet', () => {
    expect(lostRun({ phase: 'done', attempt: 1, worker: 'a' }, [run('a', 1, 'engine away')])).toBeNull();
    expect(lostRun(0, [])).toBeNull();
    expect(lostRun({}, [])).toBeNull();
  });
});

describe('the history in a result', () => {
  const result = (attempts: AttemptRecord[]): JobResult => ({ attempts }) as unknown as JobResult;

  it('puts earlier runs first', () => {
    const mine = { ...run('c', 1), state: 'Complete' as const, reason: 'exited' as const };
    expect(withEarlierRuns(result([mine]), [run('a', 1)]).attempts).toEqual([run('a', 1), mine]);
    expect(withEarlierRuns(result([mine]), []).attempts).toEqual([mine]);
  });

  it('keeps the record of a detached run instead of the adopted-from entry for it', () => {
    const detached = run('b', 1, 'worker shut down; container left running for the next worker to adopt');
    const mine = run('c', 1);
    const adoptedFrom = run('b', 1, 'worker lost the job; its container was adopted');
    expect(withEarlierRuns(result([adoptedFrom, mine]), [detached]).attempts).toEqual([detached, mine]);
  });

  it('records an interrupted run as infra with what ended it', () => {
    const complete = { ...run('a', 1), state: 'Complete' as const, reason: 'signalled' as const };
    expect(thisRun(result([complete]), 'worker shut down')).toEqual(run('a', 1, 'worker shut down'));
    expect(thisRun(result([complete]))).toEqual(complete);
  });
});
