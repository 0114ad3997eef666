import type { Logger } from 'pino';
import type { RedisConnection } from '../jobs/connection.js';
import { keys, type OutputStream, type QueueAddress } from '../jobs/keys.js';
import { type GateVerdict, gateQueueTimeout } from '../jobs/queue-timeout.js';
import type { AttemptRecord, JobResult } from '../jobs/result.js';
import { listWorkers } from '../jobs/workers.js';
import { writeFencedSideResult } from './fenced-result.js';
import { LiveOutput } from './output/live-output.js';
import { RunHistory } from './recovery/history.js';

/** What the processor reads and writes in Redis beside the BullMQ job itself. */
export interface JobRecords {
  /** The job's durable cancel flag. */
  isCancelled(jobId: string): Promise<boolean>;
  /**
   * The result of a job that BullMQ fails without a return value (kept SIDE_KEY_TTL_SECONDS), with
   * this run's history entry if given, fenced by the attempt's lock `token` (fenced-result.ts):
   * false, and nothing written, when the attempt no longer owns the job.
   */
  writeSideResult(result: JobResult, token: string | undefined, run?: AttemptRecord): Promise<boolean>;
  /** This run's history entry alone, fenced the same way (a run the retry rules run again). */
  addRunFenced(jobId: string, run: AttemptRecord, token: string | undefined): Promise<boolean>;
  /** A job's result kept beside BullMQ (a sweep's queue timeout, say), or null. */
  readSideResult(jobId: string): Promise<JobResult | null>;
  /** The queue timeout's verdict for a job this worker holds (gateQueueTimeout). */
  queueGate(jobId: string, mode: 'check' | 'admit', fallbackDeadline: number | null): Promise<GateVerdict>;
  /** Runtimes of the queue's live workers (presence). */
  liveRuntimes(): Promise<string[]>;
  /** Engines of the queue's workers seen within `staleMs` (presence). */
  liveEngines(staleMs: number): Promise<string[]>;
  /** The bounded live copy of one output stream of an attempt; absent: none. */
  openLive?: (jobId: string, stream: OutputStream, attempt: number, log: Logger) => LiveOutput;
  readonly history: Pick<RunHistory, 'read' | 'add'>;
}

/** JobRecords on the worker's command connection, under the queue's keys. */
export function redisRecords(
  redis: RedisConnection,
  address: QueueAddress,
  liveOutputBytes: number,
): JobRecords {
  return {
    isCancelled: async (jobId) => (await redis.exists(keys.cancel(address, jobId))) === 1,
    writeSideResult: (result, token, run) =>
      writeFencedSideResult(redis, address, { jobId: result.jobId, result, token, run }),
    addRunFenced: (jobId, run, token) => writeFencedSideResult(redis, address, { jobId, token, run }),
    readSideResult: async (jobId) => {
      const text = await redis.get(keys.result(address, jobId));
      return text ? (JSON.parse(text) as JobResult) : null;
    },
    queueGate: (jobId, mode, fallbackDeadline) =>
      gateQueueTimeout(redis, address, jobId, mode, fallbackDeadline),
    liveRuntimes: async () => (await listWorkers(redis, address)).workers.map((w) => w.runtime),
    liveEngines: async (staleMs) =>
      (await listWorkers(redis, address, { staleMs })).workers.map((w) => w.engine),
    openLive: (jobId, stream, attempt, log) =>
      new LiveOutput(redis, keys.output(address, jobId, stream), liveOutputBytes, attempt, log),
    history: new RunHistory(redis, address),
  };
}
