import type { AttemptRecord } from './result.js';

/**
 * How one run of the `attempts` history reads in a cell: the same words in `stevedore result
 * --table` and on the dashboard's job page.
 */

/** `—` for what a run does not have (or a record from a worker older than the retry rules). */
export const NONE = '—';

/** A cell of the `rule` column: `#2 retry`. */
export function ruleCell(rule: AttemptRecord['rule']): string {
  return rule ? `#${rule.index} ${rule.action}` : NONE;
}

/** A cell of the `exit` column: the exit code, with the signal when one ended the run. */
export function exitCell(run: Pick<AttemptRecord, 'exitCode' | 'signal'>): string {
  if (run.exitCode === undefined || run.exitCode === null) return NONE;
  return run.signal ? `${run.exitCode} (${run.signal})` : String(run.exitCode);
}

/** What a run's `why` column says: its error, if any, and why it was (or was not) run again. */
export function whyCell(run: AttemptRecord): string {
  const parts = [run.error, run.why].filter((p): p is string => typeof p === 'string' && p !== '');
  const unique = parts.filter((p, i) => parts.indexOf(p) === i);
  return unique.length === 0 ? NONE : unique.join('; ').replace(/\s+/g, ' ');
}
