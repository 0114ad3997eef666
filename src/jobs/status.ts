import type { RedisConnection } from './connection.js';
import { bullmqKeys, keys, type QueueAddress } from './keys.js';
import type { JobProgress } from './progress.js';
import { type QueueState, type Waiting, type WaitingFacts, whyWaiting } from './waiting.js';
import { DEFAULT_PRESENCE_STALE_MS, listWorkersFrom } from './workers.js';

/** Where a job is and, while it is not running, why it waits (`StevedoreClient.getStatus`). */
export interface JobStatus {
  id: string;
  state: QueueState;
  progress: JobProgress | null;
  waiting: Waiting | null;
}

export interface StatusOptions {
  /** A worker not seen for this long counts as gone (default 30 s). */
  staleMs?: number;
  now?: number;
}

/** BullMQ keeps a delayed job's ready time in its score, times 0x1000 plus a counter (getDelayedScore.lua). */
const DELAYED_SCORE_FACTOR = 0x1000;

const JOB_FIELDS = ['timestamp', 'delay', 'atm', 'attemptsMade', 'failedReason', 'progress', 'opts'] as const;

/**
 * The job's status from one MULTI: the job hash's fields, its place in each of BullMQ's
 * lists and sets (LPOS / ZRANK, never a scan of the queue), the paused flag and the workers.
 * Null when the job hash is gone.
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
    .exec();
  if (!replies) throw new Error(`reading the status of job ${id}: Redis aborted the transaction; try again`);
  for (const [error] of replies) if (error) throw error;
  const values = replies.map(([, value]) => value);
  const [timestamp, delay, atm, attemptsMade, failedReason, progressText, optsText] = values[0] as (
    | string
    | null
  )[];
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
  const facts: WaitingFacts = {
    now,
    state,
    paused: pausedFlag === 1,
    enqueuedAt: Number(timestamp),
    delayMs: Number(delay ?? 0) || 0,
    readyAt,
    attemptsMade: Number(attemptsMade ?? atm ?? 0) || 0,
    attempts: attemptsOf(optsText),
    failedReason: failedReason ?? undefined,
    ahead,
    workers,
    newestSeenAt,
    staleMs,
    progress,
  };
  return { id, state, progress, waiting: whyWaiting(facts) };
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

function attemptsOf(optsText: string | null | undefined): number | undefined {
  if (!optsText) return undefined;
  try {
    const attempts = (JSON.parse(optsText) as { attempts?: unknown }).attempts;
    return typeof attempts === 'number' ? attempts : undefined;
  } catch {
    return undefined;
  }
}
