import { exitCell, NONE, ruleCell, whyCell } from '../jobs/attempt-cells.js';
import type { AttemptRecord, JobResult } from '../jobs/result.js';

/** The columns of `stevedore result --table`: one row per run, oldest first. */
const COLUMNS = [
  'run',
  'worker',
  'started',
  'ended',
  'state',
  'reason',
  'exit',
  'rule',
  'retried',
  'why',
] as const;

/** The cells of one run, in COLUMNS order. */
export function attemptRow(run: AttemptRecord): string[] {
  return [
    String(run.attempt),
    run.worker,
    run.startedAt ?? NONE,
    run.finishedAt ?? NONE,
    run.state,
    run.reason,
    exitCell(run),
    ruleCell(run.rule),
    run.retried === undefined ? NONE : run.retried ? 'yes' : 'no',
    whyCell(run),
  ];
}

/** The result's history as a plain-text table (space-aligned), then a line on the job's end. */
export function attemptsTable(
  result: Pick<JobResult, 'jobId' | 'state' | 'reason' | 'exitCode' | 'attempts'>,
): string {
  const rows = [COLUMNS.map(String), ...result.attempts.map(attemptRow)];
  const widths = COLUMNS.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const lines = rows.map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
  const exit = result.exitCode === null ? '' : `, exit code ${result.exitCode}`;
  const runs = result.attempts.length;
  lines.push(
    '',
    `job ${result.jobId}: ${result.state} (${result.reason}${exit}) after ${runs} run${runs === 1 ? '' : 's'}`,
  );
  return lines.join('\n');
}
