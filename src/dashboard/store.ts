import { Job, type JobType, type Queue } from 'bullmq';
import type { StevedoreClient } from '../jobs/client.js';
import type { RedisConnection } from '../jobs/connection.js';
import { UnknownJobError } from '../jobs/errors.js';
import { keys, type QueueAddress } from '../jobs/keys.js';
import type { JobProgress } from '../jobs/progress.js';
import type { AttemptRecord, JobResult } from '../jobs/result.js';
import {
  LIST_STATES,
  type ListQuery,
  type ListState,
  PAGE_SIZE,
  pageWindow,
  scanChunks,
  takeMatching,
} from './list-query.js';
import type { JobDetail, JobRow, JobsPage, Overview, WorkerRow } from './model.js';
import { minuteBuckets } from './throughput.js';

export interface StoreDeps {
  queue: Queue;
  /** A plain connection for Stevedore's own keys. */
  redis: RedisConnection;
  client: StevedoreClient;
  address: QueueAddress;
  /** The queue's live workers (their presence entries). */
  workers: () => Promise<WorkerRow[]>;
  now?: () => number;
}

/** States the overview counts, in the order it shows them. */
const COUNTED: JobType[] = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'];

type AnyJob = Job<unknown, unknown>;

function progressOf(job: AnyJob): JobProgress | null {
  const p = job.progress;
  return typeof p === 'object' && p !== null && 'phase' in p ? (p as unknown as JobProgress) : null;
}

function isResult(value: unknown): value is JobResult {
  return typeof value === 'object' && value !== null && 'state' in value && 'reason' in value;
}

function imageOf(data: unknown): string {
  const image = (data as { image?: unknown } | null)?.image;
  return typeof image === 'string' ? image : '';
}

function commandOf(data: unknown): string[] {
  const command = (data as { command?: unknown } | null)?.command;
  return Array.isArray(command) ? command.map(String) : [];
}

/** What a job that a worker has taken is doing before it runs (getStatus says why others wait). */
function takenPhase(progress: JobProgress | null): string | null {
  if (!progress || progress.phase === 'running' || progress.phase === 'done') return null;
  return `taken by ${progress.worker}: ${progress.phase}`;
}

/** Every read the dashboard makes: bounded ones only (counts, one page of one list, one job). */
export class DashboardStore {
  private readonly now: () => number;

  constructor(private readonly deps: StoreDeps) {
    this.now = deps.now ?? Date.now;
  }

  async overview(): Promise<Overview> {
    const { queue, redis, address } = this.deps;
    const buckets = minuteBuckets(this.now());
    const pipeline = redis.pipeline();
    for (const kind of ['completed', 'failed'] as const) {
      for (const b of buckets) pipeline.zcount(keys.finished(address, kind), b.from, `(${b.to}`);
    }
    const [counts, replies, workers] = await Promise.all([
      queue.getJobCounts(...COUNTED),
      pipeline.exec(),
      this.deps.workers(),
    ]);
    const numbers = (replies ?? []).map(([error, n]) => {
      if (error) throw error;
      return Number(n);
    });
    const throughput = buckets.map((b, i) => ({
      from: b.from,
      completed: numbers[i] ?? 0,
      failed: numbers[buckets.length + i] ?? 0,
    }));
    return { queue: address.queue, counts, throughput, workers };
  }

  /** One page of one state's jobs; with a reason, the matching ones among at most FILTER_SCAN_LIMIT. */
  async jobsPage(query: ListQuery): Promise<JobsPage> {
    const { queue } = this.deps;
    const countList = await queue.getJobCounts(...LIST_STATES);
    const counts = Object.fromEntries(LIST_STATES.map((s) => [s, countList[s] ?? 0])) as Record<
      ListState,
      number
    >;
    const total = counts[query.state];
    if (query.reason === null) {
      const window = pageWindow(query.from, total);
      const rows = await this.rows(query.state, window.start, window.end);
      return { query, total, rows, window, scanned: null, counts };
    }
    const reason = query.reason;
    const rows: JobRow[] = [];
    let next = query.from;
    let full = false;
    for (const chunk of scanChunks(query.from, total)) {
      const chunkRows = await this.rows(query.state, chunk.start, chunk.end);
      const taken = takeMatching(chunkRows, chunk.start, (r) => r.reason === reason, PAGE_SIZE, rows.length);
      rows.push(...taken.kept);
      next = taken.nextOffset;
      full = taken.full;
      if (full || chunkRows.length === 0) break;
    }
    const more = next < total;
    return {
      query,
      total,
      rows,
      window: null,
      scanned: { from: query.from, to: next, next: more ? next : null },
      counts,
    };
  }

  async job(id: string): Promise<JobDetail> {
    const { queue, client, redis, address } = this.deps;
    const job = (await Job.fromId(queue, id)) as AnyJob | undefined;
    const result = await client.getResult(id); // throws UnknownJobError for an id nobody knows
    if (!job) {
      if (!result) throw new UnknownJobError(id);
      // Cancelled while waiting: the job hash is gone, its result stays.
      return {
        id,
        state: result.state === 'Cancelled' ? 'cancelled' : 'failed',
        image: result.image,
        command: [],
        submittedAt: Date.parse(result.finishedAt),
        progress: null,
        result,
        earlierRuns: [],
        waiting: null,
        runs: (await client.getStatus(id)).runs.message,
      };
    }
    const [state, runLines, status] = await Promise.all([
      job.getState(),
      result ? Promise.resolve([]) : redis.lrange(keys.runs(address, id), 0, -1),
      client.getStatus(id),
    ]);
    const progress = progressOf(job);
    return {
      id,
      state,
      image: imageOf(job.data),
      command: commandOf(job.data),
      submittedAt: job.timestamp,
      progress,
      result,
      earlierRuns: runLines.map((line) => JSON.parse(line) as AttemptRecord),
      // The same words as `stevedore status`: queued behind N, no worker, busy, delayed, pulling, backoff.
      waiting: result
        ? null
        : (status.waiting?.message ?? (state === 'active' ? takenPhase(progress) : null)),
      runs: status.runs.message,
    };
  }

  /** Rows of jobs `start`…`end` (inclusive) of one state's list, with the results of failed ones. */
  private async rows(state: ListState, start: number, end: number): Promise<JobRow[]> {
    const { queue, redis, address } = this.deps;
    const jobs = (await queue.getJobs([state], start, end)) as AnyJob[];
    const present = jobs.filter((j): j is AnyJob & { id: string } => j?.id !== undefined);
    // A failed job's result is Stevedore's side key (BullMQ keeps only a reason text).
    const sideTexts =
      state === 'failed' && present.length > 0
        ? await redis.mget(...present.map((j) => keys.result(address, j.id)))
        : [];
    return present.map((job, i) => {
      const side = sideTexts[i];
      const result = isResult(job.returnvalue)
        ? job.returnvalue
        : side
          ? (JSON.parse(side) as JobResult)
          : null;
      const progress = progressOf(job);
      const began = result?.startedAt ? Date.parse(result.startedAt) : job.processedOn;
      const ended = result
        ? Date.parse(result.finishedAt)
        : (job.finishedOn ?? (state === 'active' ? this.now() : undefined));
      return {
        id: job.id,
        state,
        image: imageOf(job.data) || result?.image || '',
        phase: result ? null : (progress?.phase ?? null),
        reason: result?.reason ?? null,
        exitCode: result?.exitCode ?? null,
        durationMs: began !== undefined && ended !== undefined ? Math.max(0, ended - began) : null,
        worker: result?.worker?.id ?? progress?.worker ?? null,
        submittedAt: job.timestamp,
      };
    });
  }
}
