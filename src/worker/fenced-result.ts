import type { RedisConnection } from '../jobs/connection.js';
import { bullmqKeys, keys, type QueueAddress, SIDE_KEY_TTL_SECONDS } from '../jobs/keys.js';
import type { AttemptRecord, JobResult } from '../jobs/result.js';

/**
 * Writes a side result (and the run's history entry) only while the job's BullMQ lock holds the
 * attempt's token, in one script, so nothing can take the lock between the check and the write.
 * BullMQ's own moveToFinished makes the same check before it stores a return value
 * (includes/removeLock.lua: `GET <job>:lock == token`); this covers what Stevedore writes beside it.
 *
 * KEYS: the job's lock, its side result, its run history (one hash slot: each starts with the
 * queue's prefix, which a Redis Cluster needs hash-tagged).
 * ARGV: the token ('' writes without a check), the result JSON ('' writes no side result), the
 * TTL in seconds, the run JSON ('' adds no history entry). Answers 1 when written, 0 when the
 * lock is not the token's.
 */
const FENCED_SIDE_RESULT = `
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3]) end
if ARGV[4] ~= '' then
  redis.call('RPUSH', KEYS[3], ARGV[4])
  redis.call('EXPIRE', KEYS[3], ARGV[3])
end
return 1
`;

export interface FencedSideResult {
  jobId: string;
  /** The side result; absent: only the history entry (a run the rules retry). */
  result?: JobResult;
  /** The attempt's BullMQ lock token; undefined writes without a check (a job taken without a lock). */
  token: string | undefined;
  /** This run's history entry, added in the same script. */
  run?: AttemptRecord;
}

/**
 * The job's side result (and history entry), written only if this attempt still owns the job:
 * true when written, false when its lock is gone or another worker's (nothing was written).
 */
export async function writeFencedSideResult(
  redis: RedisConnection,
  address: QueueAddress,
  write: FencedSideResult,
): Promise<boolean> {
  const { jobId } = write;
  const answer = await redis.eval(
    FENCED_SIDE_RESULT,
    3,
    bullmqKeys.lock(address, jobId),
    keys.result(address, jobId),
    keys.runs(address, jobId),
    write.token ?? '',
    write.result ? JSON.stringify(write.result) : '',
    SIDE_KEY_TTL_SECONDS,
    write.run ? JSON.stringify(write.run) : '',
  );
  return answer === 1;
}
