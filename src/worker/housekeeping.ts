import type { Queue, Worker } from 'bullmq';
import type { Logger } from 'pino';
import type { RedisConnection } from '../jobs/connection.js';
import { KEEP_FINISHED_SECONDS, type QueueAddress } from '../jobs/keys.js';
import type { JobResult } from '../jobs/result.js';
import type { JobSpecInput } from '../jobs/spec.js';
import type { WorkerEvents } from './observer.js';
import { trimFinishedCopies } from './output/finished-copy.js';
import { type RecoveryRuntime, reconcileContainers } from './recovery/reconcile.js';
import type { ConfirmStored } from './result-durability.js';
import { type FinishedAs, FinishedRetention } from './retention.js';

/** Leftover containers are looked for at start and then every this many lock durations. */
const RECONCILE_EVERY_LOCKS = 4;

export interface HousekeepingOptions {
  redis: RedisConnection;
  address: QueueAddress;
  runtime: RecoveryRuntime;
  deployment: string;
  /** STEVEDORE_LOCK_DURATION_MS: reconciling's grace, and its period in RECONCILE_EVERY_LOCKS. */
  lockDurationMs: number;
  /** STEVEDORE_KEEP_FINISHED: finished jobs of each kind kept in Redis. */
  keepFinished: number;
  /** Ids of the jobs whose run goes on now: their containers are never leftovers. */
  running: () => string[];
  events: WorkerEvents;
  logger: Logger;
  /**
   * STEVEDORE_RESULT_REPLICAS: asked once BullMQ has stored a result, before the container goes.
   * A result not confirmed leaves its container to reconciling, so a failover that loses the
   * result finds the container to adopt. Absent: the container goes at once.
   */
  confirmStored?: ConfirmStored;
}

/**
 * The worker's books off the jobs' path: container removals that wait for their job's result to
 * be stored, the trimming of finished jobs' keys, and the timer that reconciles leftover
 * containers. close() of the worker waits for all of it, so no container or write is left behind.
 */
export class Housekeeping {
  /** Kept finished jobs, for BullMQ's removeOnComplete / removeOnFail and Stevedore's own keys. */
  readonly retention: FinishedRetention;
  /** Container removals waiting for their job's result to be stored (then they run). */
  private readonly releases = new Map<string, () => Promise<void>>();
  /** Removals and trims under way. */
  private readonly cleanups = new Set<Promise<void>>();
  private reconciling: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: HousekeepingOptions) {
    this.retention = new FinishedRetention(options.redis, options.address, {
      age: KEEP_FINISHED_SECONDS,
      count: options.keepFinished,
    });
  }

  /**
   * Once BullMQ has stored a job's result: its container goes, and the finished jobs' keys are
   * trimmed (a failed job only when BullMQ will not run it again: `finishedOn` is set then).
   */
  follow(worker: Pick<Worker<JobSpecInput, JobResult>, 'on'>): void {
    worker.on('completed', (job, result) => {
      this.stored(job.id as string);
      this.retain('completed', job.id as string, result);
    });
    worker.on('failed', (job) => {
      if (!job) return;
      this.stored(job.id as string);
      if (job.finishedOn) this.retain('failed', job.id as string, null);
    });
  }

  /** BullMQ stored the job's result: its container goes, once replicas hold it when that is asked for. */
  private stored(jobId: string): void {
    const { confirmStored, logger } = this.options;
    if (!confirmStored || !this.releases.has(jobId)) {
      this.releaseNow(jobId);
      return;
    }
    const confirmed = confirmStored(jobId).then((problem) => {
      if (problem === null) {
        this.releaseNow(jobId);
        return;
      }
      // Not removed here: reconciling removes it once the job is seen finished, after the grace,
      // and a job that a failover put back finds it to adopt.
      this.releases.delete(jobId);
      logger.warn(
        { jobId },
        `${problem}; its container is kept for reconciling to remove once the job is seen finished (a failover that lost the result lets the job's next worker adopt it)`,
      );
    });
    this.track(confirmed);
  }

  /** Holds the job's container removal until its result is stored (releaseNow). */
  hold(jobId: string, release: () => Promise<void>): void {
    this.releases.set(jobId, release);
  }

  /** Starts the job's held removal, if any. */
  releaseNow(jobId: string): void {
    const release = this.releases.get(jobId);
    if (!release) return;
    this.releases.delete(jobId);
    this.track(release());
  }

  /** Off the job's path, once BullMQ has stored the result: a reader never lacks both copies. */
  retain(kind: FinishedAs, jobId: string, result: JobResult | null): void {
    const { redis, address, logger } = this.options;
    const done = trimFinishedCopies(redis, address, jobId, result)
      .then(() => this.retention.finished(kind, jobId))
      .then(() => undefined)
      .catch((error: unknown) =>
        logger.warn(
          { err: error, jobId },
          'could not trim finished jobs in Redis; the next finished job retries',
        ),
      );
    this.track(done);
  }

  /**
   * Reconciles now, then every RECONCILE_EVERY_LOCKS lock durations: a job BullMQ failed on its
   * own (stalled too often) leaves its container to no worker, and no worker may start for a long time.
   */
  async startReconciling(queue: Queue): Promise<void> {
    await this.reconcile(queue);
    this.timer = setInterval(
      () => void this.reconcile(queue),
      this.options.lockDurationMs * RECONCILE_EVERY_LOCKS,
    );
    this.timer.unref();
  }

  /** Stops the timer and waits for a reconcile under way. */
  async stopReconciling(): Promise<void> {
    clearInterval(this.timer);
    await this.reconciling;
  }

  /** Starts every held removal and waits for all removals and trims. */
  async drain(): Promise<void> {
    for (const id of [...this.releases.keys()]) this.releaseNow(id);
    await Promise.all(this.cleanups);
  }

  private track(done: Promise<void>): void {
    this.cleanups.add(done);
    void done.finally(() => this.cleanups.delete(done));
  }

  private reconcile(queue: Queue): Promise<void> {
    const { runtime, redis, address, deployment, lockDurationMs, logger, events } = this.options;
    this.reconciling ??= reconcileContainers({
      runtime,
      queue,
      redis,
      prefix: address.prefix,
      deployment,
      graceMs: lockDurationMs,
      logger,
      ownJobs: new Set([...this.options.running(), ...this.releases.keys()]),
    })
      .then((removed) => {
        if (removed.length > 0) events.emit('reconciled', { action: 'removed', count: removed.length });
      })
      .catch((error: unknown) =>
        logger.warn({ err: error }, 'could not reconcile leftover containers; continuing'),
      )
      .finally(() => {
        this.reconciling = undefined;
      });
    return this.reconciling;
  }
}
