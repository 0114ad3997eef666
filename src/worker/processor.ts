import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import type { WorkerConfig } from '../config/worker.js';
import type { ContainerExecutor } from '../executors/executor.js';
import type { ContainerRuntime } from '../executors/index.js';
import { containerLabels, containerName, logDirOf } from '../jobs/names.js';
import type { JobResult } from '../jobs/result.js';
import { effectiveRetry, grantedOf, spentOf } from '../jobs/retry.js';
import { runNumber } from '../jobs/run-count.js';
import type { JobSpecInput } from '../jobs/spec.js';
import { type AdmissionJob, admitJob } from './admission.js';
import { putBackWhileAway } from './engine-gate.js';
import type { JobGateways } from './gateway-jobs.js';
import { leaveForItsHost } from './handover-gate.js';
import type { Housekeeping } from './housekeeping.js';
import type { IdleCollector } from './idle-gc.js';
import type { JobRecords } from './job-records.js';
import { tellFinished, type WorkerEvents } from './observer.js';
import type { WorkerPolicy } from './policy-load.js';
import { queueTimedOut } from './queue-gate.js';
import { withEarlierRuns } from './recovery/history.js';
import type { RecoveryRuntime } from './recovery/reconcile.js';
import { retake } from './recovery/retake.js';
import type { StopReason } from './run/result.js';
import { runJob } from './run/run.js';
import type { RunningJobs } from './running-jobs.js';
import { putBackForItsRuntime } from './runtime-check.js';
import { carryOut } from './settle-actions.js';
import { settle } from './settlement.js';
import type { TrustedKeys } from './trusted-keys.js';

/** What the processor uses of BullMQ's job (a unit test passes one of its own). */
export type ContainerJob = AdmissionJob &
  Pick<
    Job<JobSpecInput, JobResult>,
    'attemptsStarted' | 'timestamp' | 'progress' | 'updateProgress' | 'moveToWait' | 'moveToDelayed' | 'opts'
  >;

/** A BullMQ processor: three plain parameters, so BullMQ hands over its signal (docs/pitfalls.md, "Abort signal"). */
export type Processor = (job: ContainerJob, token?: string, signal?: AbortSignal) => Promise<JobResult>;

/** Everything the processor works with, passed in. */
export interface ProcessorDeps {
  config: Pick<WorkerConfig, 'queue' | 'workerId' | 'host' | 'logDir' | 'limits' | 'hostDeadMs'>;
  deployment: string;
  /** The engine this worker's runtime runs on (ContainerRuntime.engineId). */
  engine: string;
  runtime: Pick<ContainerRuntime, 'kind' | 'capabilities' | 'mountPathProblem'> & RecoveryRuntime;
  /** One executor per attempt, on the worker's runtime. */
  makeExecutor: (options: {
    name: string;
    labels: Record<string, string>;
    logger: Logger;
  }) => ContainerExecutor;
  policy: WorkerPolicy;
  trusted: TrustedKeys | undefined;
  records: JobRecords;
  jobs: RunningJobs;
  books: Pick<Housekeeping, 'hold' | 'releaseNow'>;
  idle: Pick<IdleCollector, 'runEnded'>;
  events: WorkerEvents;
  logger: Logger;
  /** Why the worker takes no jobs because its engine is away (EngineGate), or null; absent: never. */
  engineAway?: () => string | null;
  /** The gateways of running jobs, when this worker serves one (STEVEDORE_GATEWAY). */
  gateways?: Pick<JobGateways, 'open'>;
}

/**
 * The job processor, one take of a job in order: the gates that hand it back or end it before
 * it runs (engine away, queue timeout, another runtime, its container on another host),
 * admission, what earlier takes left (retake), the run (runJob), and BullMQ's answer as `settle`
 * decides it (carryOut). Container removals wait in `books` until BullMQ has stored the result.
 */
export function createProcessor(deps: ProcessorDeps): Processor {
  const { config, deployment, runtime, records, jobs, books, events, gateways } = deps;
  const workerInfo = { host: config.host, id: config.workerId };
  const { openLive } = records;

  /** A job its queue timeout ended: the result BullMQ completes it with; nothing ran. */
  const endedInQueue = (result: JobResult, log: Logger): JobResult => {
    log.info({ timeout: result.timeout }, 'queue timeout ran out before admission: no container is made');
    tellFinished(events, config.queue, result);
    return result;
  };

  const run = async (job: ContainerJob, token?: string, signal?: AbortSignal): Promise<JobResult> => {
    const jobId = job.id as string;
    // Runs before this take: what their rules spent, and which run this is.
    const recorded = job.attemptsStarted > 1 ? await records.history.read(jobId) : [];
    const attempt = runNumber(job.attemptsMade, recorded);
    const log = deps.logger.child({ jobId, attempt });
    // Taken while the worker was stopping to take jobs (a fetch under way): back for another worker.
    const away = deps.engineAway?.();
    if (away) await putBackWhileAway(away, job, token, log);
    // Its queue timeout may have ended it while it waited (a sweep), or be over now: no container.
    const queued = await queueTimedOut(job, records, token);
    if (queued.result) return endedInQueue(queued.result, log);
    const { spec, pins } = await admitJob(job, {
      runtime: runtime.kind,
      queue: config.queue,
      liveRuntimes: records.liveRuntimes,
      worker: workerInfo,
      log,
      policy: deps.policy,
      writeSideResult: async (result) => {
        // Refused for a job this attempt no longer owns; it fails as invalid for its owner too.
        if (!(await records.writeSideResult(result, token)))
          log.warn('lost the job lock before writing the invalid result: not written');
      },
      signatures: { trusted: deps.trusted, queue: config.queue, now: Date.now },
      onInvalid: (result) => tellFinished(events, config.queue, result),
      mountPathProblem: (path) => runtime.mountPathProblem(path),
    }).catch((error: unknown) => putBackForItsRuntime(error, job, token, log));
    const here = { engine: deps.engine, canAdopt: runtime.capabilities.adopt, hostDeadMs: config.hostDeadMs };
    await leaveForItsHost(job, here, records, token, log);
    if (
      queued.verdict !== 'admitted' &&
      (queued.verdict === 'open' || spec.timeouts?.queueSeconds !== undefined)
    ) {
      const admitted = await queueTimedOut(job, records, token, spec);
      if (admitted.result) return endedInQueue(admitted.result, log);
    }
    events.emit('job-admitted', { jobId, attempt });
    const stop = jobs.start(jobId);
    // From here on the job counts as running: whatever throws, even before its run starts, ends it.
    try {
      // BullMQ's own signal (worker.cancelJob / cancelAllJobs) stops the run too.
      signal?.addEventListener(
        'abort',
        () => jobs.stop(jobId, (signal.reason as StopReason) ?? 'cancelled'),
        {
          once: true,
        },
      );
      const { adoptable, earlier } = await retake(
        job,
        { queue: config.queue, jobId, attempt, deployment, recordedRuns: recorded },
        runtime,
        runtime.capabilities.adopt,
        records.history,
        log,
      );
      if (adoptable) events.emit('adopted', { jobId, containerId: adoptable.containerId });
      // The rules this run is settled by, and what the earlier runs spent of them.
      const plan = {
        retry: effectiveRetry(spec.retry, job.opts, deps.policy.policy.retry.maxInfraLimit),
        spent: spentOf(earlier),
      };
      // Every progress snapshot says what each budget grants, so a job's status counts as this worker
      // does (a policy cap included) without knowing the policy: JobStatus.runs.
      const budgets = grantedOf(plan.retry);
      const ids = { queue: config.queue, jobId, attempt };
      const executor = deps.makeExecutor({
        name: containerName({ ...ids, started: job.attemptsStarted, deployment }),
        labels: containerLabels({ ...ids, workerId: config.workerId, deployment }),
        logger: log,
      });
      const outcome = await runJob({
        jobId,
        attempt,
        spec,
        pins,
        executor,
        adopt: adoptable ? { containerId: adoptable.containerId, fromWorker: adoptable.worker } : undefined,
        logger: log,
        worker: workerInfo,
        engine: deps.engine,
        outputDir: logDirOf(config.logDir, ids),
        enqueuedAt: job.timestamp,
        stop,
        isCancelled: () => records.isCancelled(jobId),
        publish: (progress) => job.updateProgress({ ...progress, budgets } as unknown as object),
        openLive: openLive ? (stream) => openLive(jobId, stream, attempt, log) : undefined,
        limits: config.limits ?? {
          pidsLimit: deps.policy.policy.pidsLimit,
          maxOutputBytes: deps.policy.policy.maxOutputBytes,
        },
        events,
        openGateway: gateways
          ? async (write) => {
              const gateway = await gateways.open(
                { jobId, attempt, target: executor, networkEnabled: spec.network.enabled },
                write,
                log,
              );
              return (why) => gateway.close(why);
            }
          : undefined,
      });
      const result = withEarlierRuns(outcome.result, earlier);
      return await carryOut(settle({ outcome, result }, Date.now(), plan), {
        job,
        jobId,
        token,
        queue: config.queue,
        result,
        release: outcome.release,
        records,
        books,
        events,
        log,
      });
    } finally {
      jobs.end(jobId);
      deps.idle.runEnded();
    }
  };

  return async (job: ContainerJob, token?: string, signal?: AbortSignal) => {
    const jobId = job.id as string;
    jobs.take(jobId);
    try {
      return await run(job, token, signal);
    } finally {
      jobs.letGo(jobId);
    }
  };
}
