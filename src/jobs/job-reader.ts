import { Job, type Queue } from 'bullmq';
import type { RedisConnection } from './connection.js';
import { UnknownJobError } from './errors.js';
import { keys, type OutputStream, type QueueAddress } from './keys.js';
import { readLiveOutput } from './logs.js';
import type { JobProgress } from './progress.js';
import { expireQueued } from './queue-timeout.js';
import { type JobResult, resultWithoutRun } from './result.js';
import { runCount } from './run-count.js';
import type { JobSpecInput } from './spec.js';
import { type JobStatus, readStatus } from './status.js';

/** What reading a job uses of the client: its queue and connection, and a way to open another. */
export interface JobReaderDeps {
  queue: Queue;
  redis: RedisConnection;
  address: QueueAddress;
  /** A new connection, for a stream of output that may block while it follows. */
  connect: () => RedisConnection;
  /** getStatus: a worker not seen for this long counts as gone; absent: DEFAULT_PRESENCE_STALE_MS. */
  workerStaleMs?: number;
}

/**
 * Everything the client reads about one job: its result (from BullMQ or Stevedore's side key),
 * its progress, its status and its output.
 */
export class JobReader {
  constructor(private readonly deps: JobReaderDeps) {}

  /** The result of a finished job, null while it is unfinished; throws UnknownJobError for an unknown id. */
  async result(id: string): Promise<JobResult | null> {
    const { queue, redis, address } = this.deps;
    const job = await Job.fromId<JobSpecInput, JobResult>(queue, id);
    if (!job) {
      const side = await this.sideResult(id);
      if (side) return side;
      throw new UnknownJobError(id);
    }
    // The job hash says whether it finished; no extra round trip for getState().
    if (job.finishedOn && job.returnvalue) return job.returnvalue;
    if (job.finishedOn && job.failedReason)
      return (await this.sideResult(id)) ?? failedWithoutResult(id, job);
    // Waiting past its queue deadline with no worker to end it: asking ends it.
    return expireQueued(redis, queue, address, id);
  }

  async progress(id: string): Promise<JobProgress | null> {
    const job = await Job.fromId(this.deps.queue, id);
    if (!job) {
      if (await this.sideResult(id)) return null;
      throw new UnknownJobError(id);
    }
    const progress = job.progress;
    return typeof progress === 'object' && progress !== null ? (progress as unknown as JobProgress) : null;
  }

  /** The job's status (readStatus), after ending it if its queue deadline is past. */
  async status(id: string, options: { staleMs?: number } = {}): Promise<JobStatus> {
    const { queue, redis, address } = this.deps;
    await expireQueued(redis, queue, address, id);
    const status = await readStatus(redis, address, id, {
      staleMs: options.staleMs ?? this.deps.workerStaleMs,
    });
    if (status) return status;
    // Only a side result is left of a job removed from BullMQ (cancelled while it waited).
    const side = await this.sideResult(id);
    if (!side) throw new UnknownJobError(id);
    const runs = runCount({ state: 'failed', attemptsMade: 0, history: [], result: side, granted: null });
    return { id, state: 'failed', progress: null, waiting: null, runs };
  }

  /** One output stream of a job from its bounded copy in Redis; with `follow`, until the job has finished. */
  async *logs(id: string, options: { follow?: boolean; stream?: OutputStream } = {}): AsyncGenerator<Buffer> {
    await this.result(id); // an unknown id fails here, clearly
    const stream = options.stream ?? 'stdout';
    yield* readLiveOutput({
      connection: this.deps.connect(),
      key: keys.output(this.deps.address, id, stream),
      follow: options.follow ?? false,
      finished: async () => (await this.result(id)) !== null,
      kept: async () => {
        if (stream === 'events') return null;
        return (await this.result(id))?.[stream] ?? null;
      },
    });
  }

  /** The result Stevedore keeps beside BullMQ's job (failed, or cancelled while waiting), or null. */
  async sideResult(id: string): Promise<JobResult | null> {
    const text = await this.deps.redis.get(keys.result(this.deps.address, id));
    return text ? (JSON.parse(text) as JobResult) : null;
  }
}

function failedWithoutResult(id: string, job: Job<JobSpecInput, JobResult>): JobResult {
  return resultWithoutRun({
    jobId: id,
    data: job.data,
    state: 'Failed',
    reason: 'infra',
    attempt: job.attemptsMade,
    worker: null,
    error: { phase: 'admitted', message: job.failedReason || 'failed without a reason' },
    finishedAt: new Date(job.finishedOn ?? Date.now()),
  });
}
