import type { RedisConnection } from '../jobs/connection.js';
import { keys, type QueueAddress, SIDE_KEY_TTL_SECONDS } from '../jobs/keys.js';

export type FinishedAs = 'completed' | 'failed';

/** BullMQ's KeepJobs for finished jobs: the newest `count`, none older than `age` seconds. */
export interface KeepFinished {
  age: number;
  count: number;
}

/**
 * Adds a job to the index of its kind and deletes Stevedore's own keys (result, live output, run
 * history, cancel flag) of the jobs that fall out of the newest `count`, the way BullMQ removes
 * their job hashes; older than `age` they expire by themselves (SIDE_KEY_TTL_SECONDS).
 */
const TRIM_SCRIPT = `
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
local gone = redis.call('ZRANGE', KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
for _, id in ipairs(gone) do
  for i = 5, #ARGV, 2 do redis.call('DEL', ARGV[i] .. id .. ARGV[i + 1]) end
end
if #gone > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #gone - 1) end
return #gone
`;

const ID = '\u0000id\u0000';

/** The Stevedore keys of one job, each as the text before and after its job id. */
function sideKeyTemplates(a: QueueAddress): string[] {
  return [
    keys.result(a, ID),
    keys.cancel(a, ID),
    keys.runs(a, ID),
    ...(['stdout', 'stderr', 'events'] as const).map((s) => keys.output(a, ID, s)),
  ].flatMap((key) => key.split(ID));
}

/** Keeps Stevedore's per-job keys to the same newest `count` finished jobs that BullMQ keeps. */
export class FinishedRetention {
  private readonly templates: string[];

  constructor(
    private readonly redis: RedisConnection,
    private readonly address: QueueAddress,
    readonly keep: KeepFinished,
  ) {
    this.templates = sideKeyTemplates(address);
  }

  /** Records that `jobId` finished; returns how many older jobs' keys were deleted. */
  async finished(kind: FinishedAs, jobId: string, at = Date.now()): Promise<number> {
    const gone = await this.redis.eval(
      TRIM_SCRIPT,
      1,
      keys.finished(this.address, kind),
      at,
      jobId,
      this.keep.count,
      SIDE_KEY_TTL_SECONDS,
      ...this.templates,
    );
    return Number(gone);
  }
}
