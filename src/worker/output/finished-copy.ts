import type { RedisConnection } from '../../jobs/connection.js';
import { keys, type QueueAddress } from '../../jobs/keys.js';
import { type JobResult, TAIL_BYTES } from '../../jobs/result.js';

/**
 * Entries of events a finished job keeps live: the last chunk (the lines of its last 100 ms: how
 * it ended) and the end marker. The worker host's events.log has all; readers mark the gap.
 */
const EVENTS_KEPT_LIVE = 2;
/** Entries read to decide whether a stream holds one short attempt: its data and its end marker. */
const SHORT_STREAM_ENTRIES = 3;

type Entry = [id: Buffer, fields: Buffer[]];

/** Whether a stream's entries are exactly what the result's tail holds (one attempt, nothing dropped). */
function heldByResult(entries: Entry[], summary: JobResult['stdout']): boolean {
  if (summary.truncated || summary.bytes > TAIL_BYTES || entries.length >= SHORT_STREAM_ENTRIES) return false;
  let bytes = 0;
  let ends = 0;
  for (const [, fields] of entries) {
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const name = String(fields[i]);
      if (name === 'd') bytes += (fields[i + 1] as Buffer).length;
      if (name === 'eof') ends += 1;
    }
  }
  return ends <= 1 && bytes === summary.bytes;
}

/**
 * Rewrites a stream at its own size: Redis gives every new stream node room for 4 KiB, which a
 * finished job's few short entries never fill. DUMP/RESTORE keeps ids, entries and TTL.
 */
async function compact(redis: RedisConnection, key: string): Promise<void> {
  const ttl = await redis.pttl(key);
  if (ttl === -2) return;
  const payload = await redis.dumpBuffer(key);
  if (payload) await redis.restore(key, Math.max(0, ttl), payload, 'REPLACE');
}

/**
 * Keeps the last `count` entries of a stream, with their ids, at their own size. XTRIM would only
 * mark the others deleted inside the stream's one node, which keeps its memory.
 */
async function keepLast(redis: RedisConnection, key: string, count: number): Promise<void> {
  const ttl = await redis.pttl(key);
  if (ttl === -2) return;
  const newest = ((await redis.xrevrangeBuffer(key, '+', '-', 'COUNT', count)) as Entry[]).reverse();
  const rebuild = redis.multi().del(key);
  for (const [id, fields] of newest) rebuild.xadd(key, id, ...fields);
  if (ttl > 0) rebuild.pexpire(key, ttl);
  await rebuild.exec();
  await compact(redis, key);
}

/**
 * Keeps of a finished job's live copies only what they must: a stream the result's tail holds
 * whole is dropped (`logs` reads the tail then), the events keep their last lines, and what is
 * left is compacted.
 */
export async function trimFinishedCopies(
  redis: RedisConnection,
  address: QueueAddress,
  jobId: string,
  result: JobResult | null,
): Promise<void> {
  for (const stream of ['stdout', 'stderr'] as const) {
    const key = keys.output(address, jobId, stream);
    const entries = (await redis.xrangeBuffer(key, '-', '+', 'COUNT', SHORT_STREAM_ENTRIES)) as Entry[];
    if (entries.length === 0) continue;
    if (result && heldByResult(entries, result[stream])) await redis.del(key);
    else await compact(redis, key);
  }
  await keepLast(redis, keys.output(address, jobId, 'events'), EVENTS_KEPT_LIVE);
}
