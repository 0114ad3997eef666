import type { RedisConnection } from '../../jobs/connection.js';
import { keys, type QueueAddress, SIDE_KEY_TTL_SECONDS } from '../../jobs/keys.js';
import type { AttemptRecord, JobResult } from '../../jobs/result.js';

/**
 * The runs of a job before the one that gives its result: each run that ends without the final
 * answer (a failure BullMQ retries, a lost lock, a shutdown) is added here, and so is a run whose
 * worker died and whose container is gone, noticed by the worker that takes the job next.
 */
export class RunHistory {
  constructor(
    private readonly redis: RedisConnection,
    private readonly address: QueueAddress,
  ) {}

  async read(jobId: string): Promise<AttemptRecord[]> {
    const lines = await this.redis.lrange(keys.runs(this.address, jobId), 0, -1);
    return lines.map((line) => JSON.parse(line) as AttemptRecord);
  }

  async add(jobId: string, run: AttemptRecord): Promise<void> {
    const key = keys.runs(this.address, jobId);
    await this.redis.multi().rpush(key, JSON.stringify(run)).expire(key, SIDE_KEY_TTL_SECONDS).exec();
  }
}

/** What a run publishes as progress that tells who ran it and how far it came. */
interface RunTrace {
  phase: string;
  attempt: number;
  worker: string;
}

function traceOf(progress: unknown): RunTrace | null {
  if (typeof progress !== 'object' || progress === null) return null;
  const { phase, attempt, worker } = progress as Record<string, unknown>;
  if (typeof phase !== 'string' || typeof attempt !== 'number' || typeof worker !== 'string') return null;
  return { phase, attempt, worker };
}

/**
 * The run an earlier worker left without a record, or null: the job's progress names a run that
 * the history does not have as its latest entry, and nothing is left of it to adopt.
 */
export function lostRun(
  progress: unknown,
  recorded: readonly AttemptRecord[],
  canAdopt = true,
): AttemptRecord | null {
  const trace = traceOf(progress);
  if (!trace) return null;
  const last = recorded.at(-1);
  if (last && last.worker === trace.worker && last.attempt === trace.attempt) return null;
  const when = trace.phase === 'done' ? 'after it let go of its container' : `while ${trace.phase}`;
  const error = canAdopt
    ? `worker lost ${when}; its container was gone, so the job ran again`
    : `worker lost ${when}; this runtime cannot adopt a container (it ends with its worker), so the job ran again`;
  return {
    attempt: trace.attempt,
    worker: trace.worker,
    state: 'Failed',
    reason: 'infra',
    error,
    startedAt: null,
    finishedAt: null,
    exitCode: null,
    signal: null,
    rule: null,
    retried: true,
    why: 'its worker was lost: run again without spending a budget',
    budget: null,
  };
}

/**
 * This run's own entry of the history; with `interruption`, a run that ended without an answer
 * (a shutdown, a lost lock) and goes on, in this container or a new one, without spending a budget.
 */
export function thisRun(result: JobResult, interruption?: string): AttemptRecord {
  const own = result.attempts.at(-1) as AttemptRecord;
  return interruption === undefined
    ? own
    : {
        ...own,
        state: 'Failed',
        reason: 'infra',
        error: interruption,
        rule: null,
        retried: true,
        why: interruption,
        budget: null,
      };
}

const sameRun = (a: AttemptRecord | undefined, b: AttemptRecord | undefined): boolean =>
  a !== undefined && b !== undefined && a.worker === b.worker && a.attempt === b.attempt;

/**
 * The result with the earlier runs before its own entries. An adopted run's result names the run
 * it took over; when that run is recorded already (it detached), the record says it better.
 */
export function withEarlierRuns(result: JobResult, earlier: readonly AttemptRecord[]): JobResult {
  if (earlier.length === 0) return result;
  const [first, ...rest] = result.attempts;
  const own = rest.length > 0 && sameRun(first, earlier.at(-1)) ? rest : result.attempts;
  return { ...result, attempts: [...earlier, ...own] };
}

/**
 * The runs before this one; a run that an earlier worker left without a record, and that is not
 * being adopted, is recorded first, so a crash is in the history even if this worker crashes too.
 */
export async function earlierRuns(
  history: Pick<RunHistory, 'add'>,
  recorded: readonly AttemptRecord[],
  jobId: string,
  progress: unknown,
  adopting: boolean,
  canAdopt = true,
): Promise<AttemptRecord[]> {
  const lost = adopting ? null : lostRun(progress, recorded, canAdopt);
  if (!lost) return [...recorded];
  await history.add(jobId, lost);
  return [...recorded, lost];
}
