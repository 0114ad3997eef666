import { type Job, WaitingError } from 'bullmq';
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
import { retryAfter } from './bullmq-retry.js';
import type { JobGateways } from './gateway-jobs.js';
import type { Housekeeping } from './housekeeping.js';
import type { IdleCollector } from './idle-gc.js';
import type { JobRecords } from './job-records.js';
import type { WorkerEvents } from './observer.js';
import type { WorkerPolicy } from './policy-load.js';
import { queueTimedOut } from './queue-gate.js';
import { engineElsewhere, engineOfProgress, waitingReason } from './recovery/handover.js';
import { earlierRuns, thisRun, withEarlierRuns } from './recovery/history.js';
import { recordedContainers } from './recovery/ownership.js';
import { findAdoptable, type RecoveryRuntime } from './recovery/reconcile.js';
import { runJob, type StopReason } from './run/run.js';
import type { RunningJobs } from './running-jobs.js';
import { ForAnotherRuntimeError } from './runtime-check.js';
import { lostLock, settle } from './settlement.js';
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
 * The job processor: admits the job, adopts or creates its container, runs it (runJob), and
 * settles with BullMQ as `settle` says. Container removals wait in `books` until BullMQ has
 * stored the result.
 */
export function createProcessor(deps: ProcessorDeps): Processor {
  const { config, deployment, runtime, records, jobs, books, events, gateways } = deps;
  const workerInfo = { host: config.host, id: config.workerId };
  const { openLive } = records;

  /** An attempt's result, told to the events once (not for runs put back by a shutdown). */
  const finished = (result: JobResult): void => {
    const { jobId, state, reason } = result;
    events.emit('job-finished', { jobId, queue: config.queue, state, reason });
    for (const stream of ['stdout', 'stderr'] as const) {
      if (result[stream].bytes > 0)
        events.emit('output-bytes', { jobId, stream, bytes: result[stream].bytes });
    }
  };

  /** A job its queue timeout ended: the result BullMQ completes it with; nothing ran. */
  const endedInQueue = (result: JobResult, log: Logger): JobResult => {
    log.info({ timeout: result.timeout }, 'queue timeout ran out before admission: no container is made');
    finished(result);
    return result;
  };

  const run = async (job: ContainerJob, token?: string, signal?: AbortSignal): Promise<JobResult> => {
    const jobId = job.id as string;
    // Runs before this take: what their rules spent, and which run this is.
    const recorded = job.attemptsStarted > 1 ? await records.history.read(jobId) : [];
    const attempt = runNumber(job.attemptsMade, recorded);
    const log = deps.logger.child({ jobId, attempt });
    const away = deps.engineAway?.();
    if (away) {
      // Taken while the worker was stopping to take jobs (a fetch under way): back for another worker.
      log.info({ reason: away }, 'engine away: job put back without spending an attempt');
      await job.moveToWait(token);
      throw new WaitingError();
    }
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
      onInvalid: (result) => finished(result),
      mountPathProblem: (path) => runtime.mountPathProblem(path),
    }).catch(async (error: unknown) => {
      if (!(error instanceof ForAnotherRuntimeError)) throw error;
      const rerouted = settle({ rerouted: true }, Date.now());
      // Another live worker runs the runtime it asks for: back to the queue for it, no attempt spent.
      log.info(
        { runtime: error.runtime },
        'job asks for another runtime: put back for a worker that runs it',
      );
      await job.moveToDelayed(rerouted.until, token);
      throw rerouted.error;
    });
    const elsewhere =
      job.attemptsStarted > 1
        ? engineElsewhere({
            previousEngine: engineOfProgress(job.progress),
            ownEngine: deps.engine,
            canAdopt: runtime.capabilities.adopt,
          })
        : null;
    if (elsewhere !== null && (await records.liveEngines(config.hostDeadMs)).includes(elsewhere)) {
      const handedOver = settle({ rerouted: true }, Date.now());
      log.info(
        { engine: elsewhere, reason: waitingReason(elsewhere) },
        'job left for the host that holds its container: put back, no attempt spent',
      );
      await job.moveToDelayed(handedOver.until, token);
      throw handedOver.error;
    }
    if (
      queued.verdict !== 'admitted' &&
      (queued.verdict === 'open' || spec.timeouts?.queueSeconds !== undefined)
    ) {
      const admitted = await queueTimedOut(job, records, token, spec);
      if (admitted.result) return endedInQueue(admitted.result, log);
    }
    events.emit('job-admitted', { jobId, attempt });
    const stop = jobs.start(jobId);
    // BullMQ's own signal (worker.cancelJob / cancelAllJobs) stops the run too.
    signal?.addEventListener('abort', () => jobs.stop(jobId, (signal.reason as StopReason) ?? 'cancelled'), {
      once: true,
    });
    // Taken before (a worker crashed or detached): adopt its container if it is still here,
    // so the job is not run twice; any other earlier container is removed.
    const adoptable =
      job.attemptsStarted > 1
        ? await findAdoptable(
            runtime,
            { queue: config.queue, jobId, attempt, deployment, recorded: recordedContainers(job) },
            log,
            runtime.capabilities.adopt,
          )
        : null;
    const earlier =
      job.attemptsStarted > 1
        ? await earlierRuns(
            records.history,
            recorded,
            jobId,
            job.progress,
            adoptable !== null,
            runtime.capabilities.adopt,
          )
        : [];
    if (adoptable) events.emit('adopted', { jobId, containerId: adoptable.containerId });
    /** Another worker may own the job: its container is left for it (or removed if unstarted), the run noted. */
    const letGo = async (
      lost: ReturnType<typeof lostLock>,
      result: JobResult,
      release: () => Promise<void>,
    ): Promise<never> => {
      books.hold(jobId, release);
      books.releaseNow(jobId);
      await records.history.add(jobId, thisRun(result, lost.note));
      throw lost.error;
    };
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
    try {
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
      const settled = settle({ outcome, result }, Date.now(), plan);
      switch (settled.kind) {
        case 'put-back':
          // A stopped container goes before the job goes back: nobody may adopt its exit code.
          await outcome.release();
          await records.history.add(jobId, thisRun(result, settled.note));
          log.info(
            { detached: settled.detached },
            'worker shutting down: job goes back to the queue without spending an attempt',
          );
          await job.moveToWait(token);
          throw settled.error;
        case 'lost-lock':
          return await letGo(settled, result, outcome.release);
        case 'retried': {
          // The history is the ledger of the budgets: this entry, with the budget that pays for
          // the rerun, is the one place the spending is recorded (runNumber keeps it from being
          // settled twice when this worker dies before BullMQ has counted the run). It is fenced
          // by the attempt's lock token: a run that lost the job writes none.
          if (!(await records.addRunFenced(jobId, thisRun(settled.result), token))) {
            log.warn(
              { state: result.state, reason: result.reason },
              'result not written: the job lock is gone',
            );
            return await letGo(lostLock(true), result, outcome.release);
          }
          finished(settled.result);
          // The rest wait until BullMQ has stored the failure (the worker's 'failed').
          books.hold(jobId, outcome.release);
          log.info(
            { delayMs: settled.delayMs, why: settled.result.attempts.at(-1)?.why },
            'job runs again, as its retry rules say',
          );
          retryAfter(job, settled.delayMs);
          throw settled.error;
        }
        case 'failed': {
          if (!(await records.writeSideResult(settled.result, token))) {
            log.warn(
              { state: result.state, reason: result.reason },
              'result not written: the job lock is gone',
            );
            return await letGo(lostLock(true), result, outcome.release);
          }
          finished(settled.result);
          // The rest wait until BullMQ has stored the failure (the worker's 'failed').
          books.hold(jobId, outcome.release);
          throw settled.error;
        }
        case 'completed':
          finished(settled.result);
          books.hold(jobId, outcome.release);
          return settled.result;
      }
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
