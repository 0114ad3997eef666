import type { RedisConnection } from './connection.js';
import { bullmqKeys, keys, type QueueAddress } from './keys.js';
import type { JobProgress } from './progress.js';
import type { AttemptRecord, JobResult } from './result.js';
import type { LegacyRetryOptions } from './retry.js';
import { grantedFromProgress, grantedFromSpec, type RunCount, runCount } from './run-count.js';
import { type QueueState, type Waiting, type WaitingFacts, whyWaiting } from './waiting.js';
import { DEFAULT_PRESENCE_STALE_MS, listWorkersFrom } from './workers.js';

/** Where a job is and, while it is not running, why it waits (`StevedoreClient.getStatus`). */
export interface JobStatus {
  id: string;
  state: QueueState;
  progress: JobProgress | null;
  waiting: Waiting | null;
  /** Which run the job is on and what each budget of its retry rules has left (docs/retries.md). */
  runs: RunCount;
}

export interface StatusOptions {
  /** A worker not seen for this long counts as gone (default 30 s). */
  staleMs?: number;
  now?: number;
}

/** BullMQ keeps a delayed job's ready time in its score, times 0x1000 plus a counter (getDelayedScore.lua). */
const DELAYED_SCORE_FACTOR = 0x1000;

const JOB_FIELDS = [
  'timestamp',
  'delay',
  'atm',
  'attemptsMade',
  'failedReason',
  'progress',
  'opts',
  'returnvalue',
] as const;

/**
 * The job's status from one MULTI: the job hash's fields, its place in each of BullMQ's
 * lists and sets (LPOS / ZRANK, never a scan of the queue), the paused flag, the workers, and its
 * run history and side result. Null when the job hash is gone. The budgets its rules grant come
 * from the progress of the worker that took it; for a job no worker has taken, a second round
 * trip reads them from its spec.
 */
export async function readStatus(
  redis: RedisConnection,
  address: QueueAddress,
  id: string,
  options: StatusOptions = {},
): Promise<JobStatus | null> {
  const replies = await redis
    .multi()
    .hmget(bullmqKeys.job(address, id), ...JOB_FIELDS)
    .zscore(bullmqKeys.completed(address), id)
    .zscore(bullmqKeys.failed(address), id)
    .zscore(bullmqKeys.delayed(address), id)
    .zrank(bullmqKeys.prioritized(address), id)
    .lpos(bullmqKeys.active(address), id)
    .lpos(bullmqKeys.wait(address), id)
    .lpos(bullmqKeys.paused(address), id)
    .zscore(bullmqKeys.waitingChildren(address), id)
    .llen(bullmqKeys.wait(address))
    .llen(bullmqKeys.paused(address))
    .hexists(bullmqKeys.meta(address), 'paused')
    .hgetall(keys.workers(address))
    .lrange(keys.runs(address, id), 0, -1)
    .get(keys.result(address, id))
    .exec();
  if (!replies) throw new Error(`reading the status of job ${id}: Redis aborted the transaction; try again`);
  for (const [error] of replies) if (error) throw error;
  const values = replies.map(([, value]) => value);
  const [timestamp, delay, atm, attemptsMade, failedReason, progressText, optsText, returnText] =
    values[0] as (string | null)[];
  if (timestamp === null || timestamp === undefined) return null;
  const [completed, failed, delayedScore, prioritizedRank, activeAt, waitAt, pausedAt, children] =
    values.slice(1, 9) as [
      string | null,
      string | null,
      string | null,
      number | null,
      number | null,
      number | null,
      number | null,
      string | null,
    ];
  const [waitLength, pausedLength, pausedFlag] = values.slice(9, 12) as [number, number, number];
  const workerHash = values[12] as Record<string, string>;
  const history = (values[13] as string[]).map((line) => JSON.parse(line) as AttemptRecord);
  const sideText = values[14] as string | null;
  const { state, ahead, readyAt } = placeOf({
    completed: completed !== null,
    failed: failed !== null,
    delayedScore: delayedScore === null ? null : Number(delayedScore),
    prioritizedRank,
    activeAt,
    waitAt,
    pausedAt,
    waitingChildren: children !== null,
    waitLength,
    pausedLength,
  });
  const staleMs = options.staleMs ?? DEFAULT_PRESENCE_STALE_MS;
  const now = options.now ?? Date.now();
  const { workers, newestSeenAt } = listWorkersFrom(workerHash, { staleMs, now });
  const progress = parseProgress(progressText);
  const made = Number(attemptsMade ?? atm ?? 0) || 0;
  // The spec can be megabytes (stdin travels in it): read only when no worker has said the grants.
  const granted =
    grantedFromProgress(progress) ??
    grantedFromSpec(
      parseJson(await redis.hget(bullmqKeys.job(address, id), 'data')),
      legacyOptions(optsText),
    );
  const finished = state === 'completed' || state === 'failed';
  const result = finished ? (resultOf(returnText) ?? resultOf(sideText)) : null;
  const runs = runCount({ state, attemptsMade: made, history, result, granted });
  const facts: WaitingFacts = {
    now,
    state,
    paused: pausedFlag === 1,
    enqueuedAt: Number(timestamp),
    delayMs: Number(delay ?? 0) || 0,
    readyAt,
    attemptsMade: made,
    run: runs.run,
    failedReason: failedReason ?? undefined,
    ahead,
    workers,
    newestSeenAt,
    staleMs,
    progress,
  };
  return { id, state, progress, waiting: whyWaiting(facts), runs };
}

/** What Redis said about the job's id in each of BullMQ's lists and sets (null: not in it). */
export interface Placement {
  completed: boolean;
  failed: boolean;
  delayedScore: number | null;
  prioritizedRank: number | null;
  /** LPOS: index from the head of the list. */
  activeAt: number | null;
  waitAt: number | null;
  pausedAt: number | null;
  waitingChildren: boolean;
  waitLength: number;
  pausedLength: number;
}

/**
 * The job's state (checked in the order of BullMQ's getStateV2.lua), how many jobs a worker
 * takes before it, and a delayed job's ready time.
 */
export function placeOf(p: Placement): { state: QueueState; ahead?: number; readyAt?: number } {
  if (p.completed) return { state: 'completed' };
  if (p.failed) return { state: 'failed' };
  if (p.delayedScore !== null)
    return { state: 'delayed', readyAt: Math.floor(p.delayedScore / DELAYED_SCORE_FACTOR) };
  // Workers take from `prioritized` (lowest score first) only when `wait` is empty (moveToActive.lua).
  if (p.prioritizedRank !== null) return { state: 'prioritized', ahead: p.waitLength + p.prioritizedRank };
  if (p.activeAt !== null) return { state: 'active' };
  // Jobs are LPUSHed and taken from the right (RPOPLPUSH): the ones ahead are to its right.
  if (p.waitAt !== null) return { state: 'waiting', ahead: p.waitLength - 1 - p.waitAt };
  if (p.pausedAt !== null) return { state: 'waiting', ahead: p.pausedLength - 1 - p.pausedAt };
  if (p.waitingChildren) return { state: 'waiting-children' };
  return { state: 'unknown' };
}

function parseProgress(text: string | null | undefined): JobProgress | null {
  if (!text) return null;
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && 'phase' in value ? (value as JobProgress) : null;
  } catch {
    return null;
  }
}

function parseJson(text: string | null | undefined): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** BullMQ's `attempts` and `backoff` options, which a spec without `retry.infraLimit` takes its budget from. */
function legacyOptions(optsText: string | null | undefined): LegacyRetryOptions {
  const opts = parseJson(optsText);
  if (typeof opts !== 'object' || opts === null) return {};
  const { attempts, backoff } = opts as { attempts?: unknown; backoff?: unknown };
  return {
    attempts: typeof attempts === 'number' ? attempts : undefined,
    backoff:
      typeof backoff === 'number' || (typeof backoff === 'object' && backoff !== null)
        ? (backoff as LegacyRetryOptions['backoff'])
        : undefined,
  };
}

/** A result stored as JSON (BullMQ's return value, or Stevedore's side key), or null. */
function resultOf(text: string | null | undefined): Pick<JobResult, 'attempt' | 'attempts'> | null {
  const value = parseJson(text) as Partial<JobResult> | undefined;
  if (typeof value !== 'object' || value === null) return null;
  if (typeof value.attempt !== 'number' || !Array.isArray(value.attempts)) return null;
  return { attempt: value.attempt, attempts: value.attempts };
}
