import { Job, type Queue } from 'bullmq';
import type { RedisConnection } from './connection.js';
import { bullmqKeys, keys, type QueueAddress, SIDE_KEY_TTL_SECONDS } from './keys.js';
import { type JobResult, resultWithoutRun } from './result.js';
import { type TimeoutRecord, timeoutMessage } from './timeouts.js';

/**
 * The queue timeout (`timeouts.queueSeconds`): a job not admitted by its deadline ends Cancelled,
 * reason `timeout`, phase `queued`, and no container is made, whether or not a worker runs.
 *
 * One Redis key per job, its verdict, says how the race between a worker's admission and the
 * deadline ended; it is set once, by a Lua script, by whoever decides first:
 * - the client registers the deadline at submit (a sorted set scored on the Redis server's clock);
 * - anyone may end a job that is past it: every worker sweeps the due ones each second, and a
 *   client ends a job it is asked about (getResult, getStatus, waitForResult at the deadline).
 *   The script sets `timed-out` only while no worker holds the job's lock, writes the result, and
 *   then the job is removed from BullMQ (which refuses while a worker holds the job);
 * - a worker that took the job asks the same script before admission and again at it, holding
 *   the job's lock: `timed-out` (by it or anyone before) ends the job without a container,
 *   anything else sets `admitted`, after which no sweep touches the job (a retry runs as usual).
 * A job enqueued without a registered deadline (a producer writing BullMQ directly) is judged by
 * the worker alone, from the job's timestamp, when a worker takes it.
 */

/** How often each worker looks for jobs past their queue deadline. */
export const QUEUE_SWEEP_MS = 1_000;
/** Jobs one sweep ends at most; the rest wait for the next (a second later). */
const SWEEP_BATCH = 100;

const NOW_MS = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** KEYS: deadlines; ARGV: jobId, seconds. NX: submitting the same id again keeps the first deadline. */
const REGISTER = `${NOW_MS}
redis.call('ZADD', KEYS[1], 'NX', now + math.floor(tonumber(ARGV[2]) * 1000), ARGV[1])
return now`;

/**
 * A sweep of one job. KEYS: deadlines, verdict, lock, job hash, side result; ARGV: jobId,
 * result JSON ('' = only say whether it is due), ttl. Returns admitted | gone | finished | taken
 * | timed-out | none | waiting | due.
 */
const EXPIRE = `
local verdict = redis.call('GET', KEYS[2])
if verdict == 'admitted' then redis.call('ZREM', KEYS[1], ARGV[1]) return 'admitted' end
if redis.call('EXISTS', KEYS[4]) == 0 then redis.call('ZREM', KEYS[1], ARGV[1]) return 'gone' end
if redis.call('HEXISTS', KEYS[4], 'finishedOn') == 1 then redis.call('ZREM', KEYS[1], ARGV[1]) return 'finished' end
if redis.call('EXISTS', KEYS[3]) == 1 then return 'taken' end
if verdict == 'timed-out' then return 'timed-out' end
local deadline = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not deadline then return 'none' end
${NOW_MS}
if now < tonumber(deadline) then return 'waiting' end
if ARGV[2] == '' then return 'due' end
redis.call('SET', KEYS[2], 'timed-out', 'EX', ARGV[3])
redis.call('SET', KEYS[5], ARGV[2], 'EX', ARGV[3])
return 'timed-out'`;

/**
 * A worker's question, holding the job's lock. KEYS: deadlines, verdict; ARGV: jobId, mode
 * (check | admit), the deadline from the job's timestamp ('' = none), ttl. Returns admitted |
 * timed-out | open (check: not decided) | none (check: no deadline known).
 */
const GATE = `
local verdict = redis.call('GET', KEYS[2])
if verdict then return verdict end
local deadline = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not deadline and ARGV[3] ~= '' then deadline = ARGV[3] end
if deadline then
${NOW_MS}
  if now >= tonumber(deadline) then
    redis.call('SET', KEYS[2], 'timed-out', 'EX', ARGV[4])
    redis.call('ZREM', KEYS[1], ARGV[1])
    return 'timed-out'
  end
end
if ARGV[2] == 'admit' then
  redis.call('SET', KEYS[2], 'admitted', 'EX', ARGV[4])
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 'admitted'
end
if deadline then return 'open' end
return 'none'`;

const DUE = `${NOW_MS}
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))`;

export type GateVerdict = 'admitted' | 'timed-out' | 'open' | 'none';

/** Registers a job's queue deadline, `seconds` from now on the Redis server's clock; returns that deadline (ms). */
export async function registerQueueDeadline(
  redis: RedisConnection,
  address: QueueAddress,
  jobId: string,
  seconds: number,
): Promise<number> {
  const now = await redis.eval(REGISTER, 1, keys.queueDeadlines(address), jobId, String(seconds));
  return Number(now) + Math.floor(seconds * 1000);
}

/** The job's registered queue deadline (ms on the Redis server's clock), or null. */
export async function queueDeadlineOf(
  redis: RedisConnection,
  address: QueueAddress,
  jobId: string,
): Promise<number | null> {
  const score = await redis.zscore(keys.queueDeadlines(address), jobId);
  return score === null ? null : Number(score);
}

/**
 * A worker's admission gate for a job it holds: `check` before admission (has it timed out
 * already, or is it past a registered deadline?), `admit` once admitted (timed out, or from now
 * on never). `fallbackDeadline`: from the job's timestamp and spec, for a job nobody registered.
 */
export async function gateQueueTimeout(
  redis: RedisConnection,
  address: QueueAddress,
  jobId: string,
  mode: 'check' | 'admit',
  fallbackDeadline: number | null,
): Promise<GateVerdict> {
  const verdict = await redis.eval(
    GATE,
    2,
    keys.queueDeadlines(address),
    keys.queueVerdict(address, jobId),
    jobId,
    mode,
    fallbackDeadline === null ? '' : String(fallbackDeadline),
    String(SIDE_KEY_TTL_SECONDS),
  );
  return verdict as GateVerdict;
}

/** The result of a job its queue timeout ended: it never ran. */
export function queueTimeoutResult(
  jobId: string,
  data: unknown,
  attempt: number,
  seconds: number,
): JobResult {
  const timeout: TimeoutRecord = {
    field: 'timeouts.queueSeconds',
    name: 'queueSeconds',
    phase: 'queued',
    seconds,
  };
  return resultWithoutRun({
    jobId,
    data,
    state: 'Cancelled',
    reason: 'timeout',
    attempt,
    worker: null,
    error: { phase: 'queued', message: timeoutMessage(timeout) },
    timeout,
  });
}

/** The queue timeout a job's data asks for (a signed job's data is its spec too, with the signature beside). */
export function queueSecondsOf(data: unknown): number | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const timeouts = (data as Record<string, unknown>).timeouts;
  if (typeof timeouts !== 'object' || timeouts === null) return undefined;
  const seconds = (timeouts as Record<string, unknown>).queueSeconds;
  return typeof seconds === 'number' ? seconds : undefined;
}

/**
 * Ends the job if it is past its registered queue deadline and no worker holds it: its result
 * (Cancelled, timeout, phase queued) is written and the job removed from BullMQ. Returns the
 * result when the job is (or was already) timed out this way, else null. Safe to call from any
 * process, any number of times: the verdict is set once.
 */
export async function expireQueued(
  redis: RedisConnection,
  queue: Queue,
  address: QueueAddress,
  jobId: string,
): Promise<JobResult | null> {
  const ask = (result: string): Promise<unknown> =>
    redis.eval(
      EXPIRE,
      5,
      keys.queueDeadlines(address),
      keys.queueVerdict(address, jobId),
      bullmqKeys.lock(address, jobId),
      bullmqKeys.job(address, jobId),
      keys.result(address, jobId),
      jobId,
      result,
      String(SIDE_KEY_TTL_SECONDS),
    );
  let answer = await ask('');
  if (answer === 'due') {
    const job = await Job.fromId(queue, jobId);
    if (!job) return null;
    const result = queueTimeoutResult(jobId, job.data, job.attemptsMade, queueSecondsOf(job.data) ?? 0);
    answer = await ask(JSON.stringify(result));
  }
  if (answer !== 'timed-out') return null;
  const text = await redis.get(keys.result(address, jobId));
  // Removing it wakes result waiters (a `removed` event); BullMQ refuses if a worker took the job
  // since, and that worker ends it by the verdict. Either way the sweep is done with it.
  const removed = await queue.remove(jobId);
  if (removed === 1 || (await Job.fromId(queue, jobId)) === undefined)
    await redis.zrem(keys.queueDeadlines(address), jobId);
  return text ? (JSON.parse(text) as JobResult) : null;
}

/** Ends every job past its queue deadline (up to a batch); returns how many it ended. */
export async function sweepQueueTimeouts(
  redis: RedisConnection,
  queue: Queue,
  address: QueueAddress,
): Promise<number> {
  const due = (await redis.eval(DUE, 1, keys.queueDeadlines(address), String(SWEEP_BATCH))) as string[];
  let ended = 0;
  for (const jobId of due) if (await expireQueued(redis, queue, address, jobId)) ended += 1;
  return ended;
}
