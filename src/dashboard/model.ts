import type { JobProgress } from '../jobs/progress.js';
import type { AttemptRecord, JobResult, RunReason } from '../jobs/result.js';
import type { WorkerPresence } from '../jobs/workers.js';
import type { ListQuery, ListState, PageWindow } from './list-query.js';

/** What the views show; the store reads it, the views only render it. */

/** One worker on the queue, as its presence entry says. */
export type WorkerRow = WorkerPresence;

export interface Overview {
  queue: string;
  counts: Record<string, number>;
  /** Finished jobs per minute, oldest first; the last is the minute under way. */
  throughput: { from: number; completed: number; failed: number }[];
  /** Workers seen within the presence limit (30 s), by id. */
  workers: WorkerRow[];
}

export interface JobRow {
  id: string;
  state: string;
  image: string;
  /** Where the run is (for unfinished jobs), from its progress. */
  phase: string | null;
  reason: RunReason | null;
  exitCode: number | null;
  durationMs: number | null;
  worker: string | null;
  /** When it was submitted (Unix ms). */
  submittedAt: number;
}

export interface JobsPage {
  query: ListQuery;
  total: number;
  rows: JobRow[];
  /** A plain page: its place among the pages. */
  window: PageWindow | null;
  /** A reason-filtered page: which jobs of the list it looked at, and where the next page starts. */
  scanned: { from: number; to: number; next: number | null } | null;
  counts: Record<ListState, number>;
}

export interface JobDetail {
  id: string;
  state: string;
  image: string;
  command: string[];
  submittedAt: number;
  progress: JobProgress | null;
  result: JobResult | null;
  /** Runs before the current one (keys.runs), for an unfinished job; a result carries its own. */
  earlierRuns: AttemptRecord[];
  /** Why it is not running, in words, while it waits; null once it runs or has finished. */
  waiting: string | null;
  /** Which run it is on and the reruns its budgets have left, in the words of `stevedore status`; null: not known. */
  runs: string | null;
}
