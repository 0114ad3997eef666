import { describe, expect, it } from 'vitest';
import { attemptsTable } from '../../src/cli/attempts-table.js';
import { whyCell } from '../../src/jobs/attempt-cells.js';
import type { AttemptRecord } from '../../src/jobs/result.js';

const run = (attempt: number, fields: Partial<AttemptRecord>): AttemptRecord => ({
  attempt,
  worker: 'w1',
  state: 'Complete',
  reason: 'exited',
  error: null,
  startedAt: `2026-12-06T10:00:0${attempt}.000Z`,
  finishedAt: `2026-12-06T10:00:0${attempt}.500Z`,
  exitCode: 75,
  signal: null,
  rule: { index: 0, action: 'retry' },
  retried: true,
  why: `exit code 75 (rule 0): rerun ${attempt} of 5 from limit`,
  budget: 'limit',
  ...fields,
});

describe('stevedore result --table', () => {
  it('prints one row per run, the rule, whether it ran again and why, then the job’s end', () => {
    const table = attemptsTable({
      jobId: 'j1',
      state: 'Complete',
      reason: 'exited',
      exitCode: 0,
      attempts: [
        run(1, {}),
        run(2, { exitCode: 0, rule: null, retried: false, why: 'exit code 0', budget: null }),
      ],
    });
    const lines = table.split('\n');
    expect(lines[0]).toMatch(
      /^run\s+worker\s+started\s+ended\s+state\s+reason\s+exit\s+rule\s+retried\s+why$/,
    );
    expect(lines[1]).toMatch(
      /^1\s+w1\s+2026-12-06T10:00:01.000Z\s+2026-12-06T10:00:01.500Z\s+Complete\s+exited\s+75\s+#0 retry\s+yes\s+exit code 75 \(rule 0\): rerun 1 of 5 from limit$/,
    );
    expect(lines[2]).toMatch(/^2\s+w1\s+.*\s+0\s+—\s+no\s+exit code 0$/);
    expect(lines.at(-1)).toBe('job j1: Complete (exited, exit code 0) after 2 runs');
  });

  it('shows a run recorded by an older worker with dashes, and an error beside why', () => {
    const old: AttemptRecord = {
      attempt: 1,
      worker: 'w0',
      state: 'Failed',
      reason: 'infra',
      error: 'engine away',
    };
    expect(
      attemptsTable({ jobId: 'j', state: 'Failed', reason: 'infra', exitCode: null, attempts: [old] }),
    ).toMatch(/^1\s+w0\s+—\s+—\s+Failed\s+infra\s+—\s+—\s+—\s+engine away$/m);
    expect(whyCell({ ...old, why: 'reason infra: rerun 1 of 2 from infra' })).toBe(
      'engine away; reason infra: rerun 1 of 2 from infra',
    );
  });
});
