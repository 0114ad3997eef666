import { describe, expect, it } from 'vitest';
import type { AttemptRecord, JobResult } from '../../src/jobs/result.js';
import { runNumber } from '../../src/jobs/run-count.js';
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
    expect(lostRun({ phase: 'running', attempt: 1, worker: 'doomed' }, [])).toMatchObject({
      attempt: 1,
      worker: 'doomed',
      state: 'Failed',
      reason: 'infra',
      error: 'worker lost while running; its container was gone, so the job ran again',
      retried: true,
      budget: null,
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
    expect(thisRun(result([complete]), 'worker shut down')).toEqual({
      ...run('a', 1, 'worker shut down'),
      rule: null,
      retried: true,
      why: 'worker shut down',
      budget: null,
    });
    expect(thisRun(result([complete]))).toEqual(complete);
  });
});

describe('the run number', () => {
  const settled = (attempt: number): AttemptRecord => ({
    ...run('a', attempt),
    retried: true,
    budget: 'limit',
  });

  it('is BullMQ’s count of ended runs plus one', () => {
    expect(runNumber(0, [])).toBe(1);
    expect(runNumber(2, [settled(1), settled(2)])).toBe(3);
  });

  it('moves past a run its worker settled but BullMQ never counted (it died in between)', () => {
    expect(runNumber(0, [settled(1)])).toBe(2);
    expect(runNumber(1, [settled(1), settled(2)])).toBe(3);
  });

  it('stays for a run that was put back or lost: it runs again under its number, spending nothing', () => {
    const putBack: AttemptRecord = { ...run('a', 1, 'worker shut down'), retried: true, budget: null };
    expect(runNumber(0, [putBack])).toBe(1);
  });
});
