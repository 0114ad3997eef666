import { describe, expect, it } from 'vitest';
import type { PlannedJob } from '../../load/mix.js';
import { summarize } from '../../load/report.js';
import type { Outcome } from '../../load/run-load.js';
import { emptyStream, type JobResult } from '../../src/jobs/result.js';
import { summaryInput } from '../helpers/load-summary.js';

const planned = (id: string, kind: PlannedJob['kind'] = 'trivial'): PlannedJob => ({
  id,
  kind,
  via: 'client',
});
const result = (id: string): JobResult =>
  ({
    jobId: id,
    state: 'Complete',
    reason: 'exited',
    exitCode: 0,
    stdout: emptyStream(),
    attempts: [],
  }) as unknown as JobResult;
const done = (id: string, over: Partial<Outcome> = {}): Outcome => ({
  job: planned(id),
  submittedAt: 1_000,
  finishedAt: 1_500,
  result: result(id),
  ...over,
});

describe('a load run summary', () => {
  it('counts a submit refused with an error apart from a lost job, and checks a result that came anyway', () => {
    const outcomes: Outcome[] = [
      done('right'),
      { job: planned('lost'), submittedAt: 1_000 },
      {
        job: planned('told'),
        submittedAt: 1_000,
        submitError: '0 of 1 replicas confirmed the add within 1000 ms',
      },
      done('told-but-ran', { submitError: 'Command aborted due to connection close' }),
      { job: planned('invalid', 'invalid'), submittedAt: 1_000, refused: true },
      done('wait-gave-up', { waitError: 'Connection is closed.' }),
    ];
    const starts = new Map(['right', 'told-but-ran', 'wait-gave-up'].map((id) => [id, ['w#1']]));
    const report = summarize(
      summaryInput({
        outcomes,
        starts,
        allowedStarts: (kind) => (kind === 'invalid' ? { min: 0, max: 0 } : { min: 1, max: 1 }),
      }),
    );
    expect(report.lost).toEqual(['lost (trivial, via client): no result']);
    expect(report.told).toEqual([
      'told (trivial, via client): refused at submit, producer told: 0 of 1 replicas confirmed the add within 1000 ms',
    ]);
    expect(report.refused).toBe(1);
    expect(report.waitErrors).toEqual([
      'wait-gave-up: waitForResult gave up (Connection is closed.), yet the result was there',
    ]);
    expect(report.shares).toEqual({ '(none: never ran)': 3 });
    expect({ runTwice: report.runTwice, wrong: report.wrong }).toEqual({ runTwice: [], wrong: [] });
  });
});
