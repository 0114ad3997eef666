import { describe, expect, it } from 'vitest';
import type { FailoverRecord } from '../../load/failover.js';
import { analyseFailovers, renderFailovers } from '../../load/failover-report.js';
import type { Outcome } from '../../load/run-load.js';
import type { JobResult } from '../../src/jobs/result.js';

const KILL: FailoverRecord = {
  oldPort: 7001,
  newPort: 7002,
  killedAt: 10_000,
  promotedAt: 12_500,
  atSubmitted: 0.33,
  settledMs: 4_000,
  rejoinMs: 3_000,
};

/** A trivial job submitted at `submittedAt`, its container started at `startedAt` by `worker`, seen done at `finishedAt`. */
function job(
  id: string,
  submittedAt: number,
  startedAt: number,
  finishedAt: number,
  worker: string,
): Outcome {
  const result = {
    jobId: id,
    attempts: [{ attempt: 1, worker, state: 'Complete', reason: 'exited', error: null }],
    adopted: false,
    state: 'Complete',
    startedAt: new Date(startedAt).toISOString(),
    worker: { host: 'h', id: worker },
  } as JobResult;
  return { job: { id, kind: 'trivial', via: 'client' }, submittedAt, finishedAt, result };
}

const steadyA = job('a', 1_000, 1_500, 2_000, 'w1');
const steadyB = job('b', 1_200, 1_600, 2_200, 'w2');
const inFlight = job('c', 9_500, 9_800, 13_000, 'w1');
const duringOutage = job('d', 11_000, 13_200, 13_500, 'w2');
const afterRecovery = job('e', 14_000, 14_300, 14_800, 'w1');
const switchMaster = (at: number) => ({
  at,
  channel: '+switch-master',
  message: 'stevedore-test 127.0.0.1 7001 127.0.0.1 7002',
});
const told: Outcome = {
  job: { id: 'f', kind: 'trivial', via: 'bullmq' },
  submittedAt: 10_500,
  submitError: '0 of 1 replicas confirmed the add within 1000 ms',
};

describe('the failover figures of a Sentinel load run', () => {
  it('times promotion, the first result, the first new job and each worker from the kill, and splits the delay', () => {
    const analysis = analyseFailovers(
      [KILL],
      [steadyA, steadyB, inFlight, duringOutage, afterRecovery, told],
      { warmup: 1, events: [switchMaster(12_400)] },
    );
    expect(analysis.failovers).toEqual([
      {
        record: KILL,
        promotedMs: 2_500,
        firstResultMs: 3_000, // c, in flight at the kill
        firstNewJobMs: 3_500, // d, the first job submitted after the kill
        workersBack: { w2: 3_200, w1: 4_300 },
        stopped: [],
        // c and d were in flight between the kill and d's result; e came after.
        delay: { jobs: 2, p50: 2_500, p99: 3_500, max: 3_500 },
      },
    ]);
    // a is the warm-up; b and e the steady state.
    expect(analysis.warmup).toEqual({ jobs: 1, p50: 1_000, p99: 1_000, max: 1_000 });
    expect(analysis.steady).toEqual({ jobs: 2, p50: 800, p99: 1_000, max: 1_000 });
    expect(analysis).toMatchObject({ unplanned: [], reruns: 0, adopted: 0 });
    const text = renderFailovers(analysis);
    expect(text).toContain(
      '| 1 | :7001 → :7002 at 33% submitted | 2.5 s | 3.0 s | 3.5 s | 2 of 2 (3.2 s, 4.3 s) | 4.0 s | 3.0 s |',
    );
    expect(text).toContain(
      '| steady state: the others in flight during no failover | 2 | 800 / 1000 / 1000 |',
    );
  });

  it('names a switch of master that no kill caused', () => {
    const analysis = analyseFailovers([KILL], [steadyA, inFlight, duringOutage], {
      events: [switchMaster(12_400), { at: 30_000, channel: '+sdown', message: 'x' }, switchMaster(30_500)],
    });
    expect(analysis.unplanned).toEqual([switchMaster(30_500)]);
    expect(renderFailovers(analysis)).toContain(
      '- a failover no kill caused, 20.5 s after the first kill: +switch-master stevedore-test 127.0.0.1 7001 127.0.0.1 7002',
    );
  });

  it('names a worker that ran jobs before the kill and took none after it', () => {
    const analysis = analyseFailovers([KILL], [steadyA, steadyB, inFlight, duringOutage]);
    expect(analysis.failovers[0]?.stopped).toEqual(['w1']);
    expect(renderFailovers(analysis)).toContain(
      '- failover 1: worker w1 ran jobs before the kill and none submitted after it',
    );
  });

  it('says none when no job submitted after the kill finished', () => {
    const analysis = analyseFailovers([KILL], [steadyA, inFlight]);
    expect(analysis.failovers[0]).toMatchObject({ firstNewJobMs: null, stopped: ['w1'] });
    // The window then ends at the promotion: c was in flight in it.
    expect(analysis.failovers[0]?.delay.jobs).toBe(1);
  });
});
