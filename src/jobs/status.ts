import type { Redis } from 'ioredis';
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
  redis: Redis,
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
  const [
    fields,
    completed,
    failed,
    delayedScore,
    prioritizedRank,
    activeAt,
    waitAt,
    pausedAt,
    children,
    waitLength,
    pausedLength,
    pausedFlag,
    workerHash,
  ] = replies.map(([, value]) => value) as [
    (string | null)[],
    string | null,
    string | null,
    string | null,
    number | null,
    number | null,
    number | null,
    number | null,
    string | null,
    number,
    number,
    number,
    Record<string, string>,
  ];
  const [timestamp, delay, atm, attemptsMade, failedReason, progressText, optsText] = fields;
  if (timestamp === null || timestamp === undefined) return null;

  const state: QueueState =
    completed !== null
      ? 'completed'
      : failed !== null
        ? 'failed'
        : delayedScore !== null
          ? 'delayed'
          : prioritizedRank !== null
            ? 'prioritized'
            : activeAt !== null
              ? 'active'
              : waitAt !== null || pausedAt !== null
                ? 'waiting'
                : children !== null
                  ? 'waiting-children'
                  : 'unknown';
  // Workers take from the right of `wait`, and from `prioritized` (lowest score first) only when `wait` is empty.
  const ahead =
    state === 'prioritized'
      ? waitLength + (prioritizedRank as number)
      : waitAt !== null
        ? waitLength - 1 - waitAt
        : pausedAt !== null
          ? pausedLength - 1 - pausedAt
          : undefined;
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
    readyAt: delayedScore === null ? undefined : Math.floor(Number(delayedScore) / DELAYED_SCORE_FACTOR),
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
