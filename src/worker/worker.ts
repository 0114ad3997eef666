import { join } from 'node:path';
import { DelayedError, type Job, Queue, UnrecoverableError, WaitingError } from 'bullmq';
import { type Logger, pino } from 'pino';
import { createExecutor, openRuntime, type RuntimeOptions } from '../executors/index.js';
import { RegistryAuthError, RegistryCredentials } from '../executors/registry-auth.js';
import { connect, type RedisTls, throttled } from '../jobs/connection.js';
import { deploymentId } from '../jobs/deployment.js';
import { coerceError, ImageUnavailableError, MountChangedError } from '../jobs/errors.js';
import { KEEP_FINISHED_SECONDS, keys, type QueueAddress, SIDE_KEY_TTL_SECONDS } from '../jobs/keys.js';
import { containerLabels, containerName, logDirOf } from '../jobs/names.js';
import { checkRedisAccess, RedisAccessError } from '../jobs/redis-check.js';
import type { JobResult } from '../jobs/result.js';
import type { JobSpecInput } from '../jobs/spec.js';
import { listWorkers, PresenceWriter } from '../jobs/workers.js';
import { admitJob } from './admission.js';
import { BoundedWorker } from './bounded-job.js';
import { listenForCancels } from './cancel-listener.js';
import { ConfigError, type WorkerConfig } from './config.js';
import { startEmbeddedRedis } from './embedded-redis.js';
import { IdleCollector } from './idle-gc.js';
import { WorkerEvents } from './observer.js';
import { trimFinishedCopies } from './output/finished-copy.js';
import { LiveOutput } from './output/live-output.js';
import { engineDataPaths, loadWorkerPolicy, redisDataDir } from './policy-load.js';
import { probeWorker, type WorkerProbe } from './probe.js';
import { earlierRuns, RunHistory, thisRun, withEarlierRuns } from './recovery/history.js';
import { recordedContainers } from './recovery/ownership.js';
import { findAdoptable, reconcileContainers } from './recovery/reconcile.js';
import { readRedisTls } from './redis-tls.js';
import { type FinishedAs, FinishedRetention } from './retention.js';
import { runJob, type StopReason } from './run/run.js';
import { ForAnotherRuntimeError } from './runtime-check.js';
import { TrustedKeys } from './trusted-keys.js';

export type { WorkerProbe } from './probe.js';

export interface WorkerDeps {
  logger?: Logger;
  /** Settings of the runtime beyond the worker's configuration (a docker client, say). */
  runtimeOptions?: RuntimeOptions;
  /** Where the worker tells what it does (metrics subscribe before it starts); absent: its own. */
  events?: WorkerEvents;
}

export interface WorkerHandle {
  readonly id: string;
  /** The Redis in use, with its password if any: for connecting, never for logs (redactRedisUrl). */
  readonly redisUrl: string;
  /** Stops taking jobs; running jobs get `shutdownGraceMs`, then are stopped and put back without spending an attempt. */
  close(options?: { graceMs?: number }): Promise<void>;
  /** Number of jobs running now. */
  running(): number;
  readonly queue: string;
  /** Jobs it runs at once (STEVEDORE_CONCURRENCY). */
  readonly capacity: number;
  readonly events: WorkerEvents;
  /** Asks Redis and the engine now, each within PROBE_TIMEOUT_MS. */
  probe(): Promise<WorkerProbe>;
  /** Why it takes no jobs now (closing, paused), or null: no I/O, so callers that cache `probe()` ask it fresh. */
  whyNoJobs(): string | null;
  /** The queue's jobs by state (one Redis read; callers cache it). */
  queueCounts(): Promise<Record<string, number>>;
}

/** Leftover containers are looked for at start and then every this many lock durations. */
const RECONCILE_EVERY_LOCKS = 4;
/** How soon a job for another runtime is offered again (to whichever worker takes it next). */
const REROUTE_DELAY_MS = 1_000;

/** The registry credentials file, read now: a bad one stops the worker here, naming the file and entry. */
function readCredentials(config: WorkerConfig, logger: Logger): RegistryCredentials {
  try {
    return RegistryCredentials.load(config.registryAuth.path, {
      required: config.registryAuth.required,
      onReloadError: (message) => logger.warn({ registryAuth: config.registryAuth.path }, message),
    });
  } catch (error) {
    if (error instanceof RegistryAuthError) throw new ConfigError(error.message);
    throw error;
  }
}

/**
 * Wrong credentials, a missing ACL permission or an untrusted certificate stop the worker here,
 * as a ConfigError (one line, no password); a Redis not up yet is waited for as before.
 */
async function checkExternalRedis(url: string, tls: RedisTls | undefined): Promise<undefined> {
  try {
    await checkRedisAccess(url, tls);
  } catch (error) {
    if (error instanceof RedisAccessError) throw new ConfigError(`connecting to Redis: ${error.message}`);
    throw error;
  }
  return undefined;
}

/** Starts a worker that takes container jobs from the queue and runs them. */
export async function startWorker(config: WorkerConfig, deps: WorkerDeps = {}): Promise<WorkerHandle> {
  const logger = (deps.logger ?? pino({ level: config.logLevel })).child({ workerId: config.workerId });
  const events = deps.events ?? new WorkerEvents();
  const credentials = readCredentials(config, logger);
  const policy = await loadWorkerPolicy(config);
  const tls = readRedisTls(config.redisTls);
  if (credentials.hosts.length > 0) logger.info({ registryAuth: credentials }, 'registry credentials read');
  const trusted = config.trustedKeysDir ? await TrustedKeys.load(config.trustedKeysDir, logger) : undefined;
  // Redis first: the deployment's id kept there names and labels everything the runtime makes
  // (its namespace holders, its cgroups), so the runtime is opened knowing it.
  const embedded = config.redisUrl
    ? await checkExternalRedis(config.redisUrl, tls)
    : await startEmbeddedRedis(config.stateDir, logger);
  const redisUrl = config.redisUrl ?? (embedded?.url as string);
  const address: QueueAddress = { queue: config.queue, prefix: config.prefix };
  const onRedisError = throttled((error) =>
    logger.warn({ err: error }, 'Redis connection error; retrying (running containers are not affected)'),
  );
  const commands = connect(redisUrl, onRedisError, tls);
  /** Undoes what start-up opened so far, when a later step fails. */
  const abandon = async (): Promise<void> => {
    await commands.quit().catch(() => commands.disconnect());
    await embedded?.stop();
  };
  const deployment = await deploymentId(commands, address).catch(async (error: unknown) => {
    await abandon();
    throw new ConfigError(`reading the deployment's id from Redis: ${coerceError(error).message}`);
  });
  // Podman is Docker's runtime over Podman's API: the same settings, and its socket.
  const engineSettings = {
    logDriver: config.logDriver,
    engineOutageMs: config.engineOutageMs,
    visibleDevices: { cuda: config.cudaVisibleDevices, amd: config.amdVisibleDevices },
    netns: config.netns,
    owner: { queue: config.queue, workerId: config.workerId, deployment },
    credentials,
    pull: { timeoutMs: config.pullTimeoutMs, stallMs: config.pullStallMs },
  };
  const runtime = await openRuntime(config.runtime, {
    ...deps.runtimeOptions,
    docker: { ...engineSettings, ...deps.runtimeOptions?.docker },
    podman: {
      ...engineSettings,
      socket: config.podmanSocket,
      searchPath: config.searchPath,
      logger,
      ...deps.runtimeOptions?.podman,
    },
    singularity: {
      ...config.singularity,
      stateDir: join(config.stateDir, 'singularity'),
      credentials,
      visibleDevices: { cuda: config.cudaVisibleDevices, amd: config.amdVisibleDevices },
      ...deps.runtimeOptions?.singularity,
    },
  }).catch(async (error: unknown) => {
    await abandon();
    throw error;
  });
  logger.info({ deployment }, 'deployment id read');
  policy.neverAllowed.push(...(await redisDataDir(commands)), ...(await engineDataPaths(runtime, logger)));
  const runs = new Map<string, AbortController>();
  const idle = new IdleCollector(() => runs.size > 0);
  /** Container removals waiting for their job's result to be stored (then they run). */
  const releases = new Map<string, () => Promise<void>>();
  /** Container removals under way; close() waits for them so no container is left. */
  const cleanups = new Set<Promise<void>>();
  const releaseNow = (jobId: string): void => {
    const release = releases.get(jobId);
    if (!release) return;
    releases.delete(jobId);
    const done = release();
    cleanups.add(done);
    void done.finally(() => cleanups.delete(done));
  };
  const workerInfo = { host: config.host, id: config.workerId };
  const history = new RunHistory(commands, address);
  const retention = new FinishedRetention(commands, address, {
    age: KEEP_FINISHED_SECONDS,
    count: config.keepFinished,
  });

  const stopRun = (jobId: string, reason: StopReason): void => {
    const controller = runs.get(jobId);
    if (controller && !controller.signal.aborted) {
      logger.info({ jobId, reason }, 'stopping job');
      controller.abort(reason);
    }
  };

  const writeSideResult = async (result: JobResult): Promise<void> => {
    await commands.set(
      keys.result(address, result.jobId),
      JSON.stringify(result),
      'EX',
      SIDE_KEY_TTL_SECONDS,
    );
  };

  /** An attempt's result, told to the events once (not for runs put back by a shutdown). */
  const finished = (result: JobResult): void => {
    const { jobId, state, reason } = result;
    events.emit('job-finished', { jobId, queue: config.queue, state, reason });
    for (const stream of ['stdout', 'stderr'] as const) {
      if (result[stream].bytes > 0)
        events.emit('output-bytes', { jobId, stream, bytes: result[stream].bytes });
    }
  };

  // Tells readers (`stevedore status`, the dashboard) that this worker serves the queue, and how busy it is.
  const presence = new PresenceWriter(commands, address, {
    id: config.workerId,
    host: config.host,
    pid: process.pid,
    capacity: config.concurrency,
    runtime: runtime.kind,
    running: () => [...taken],
    onError: onRedisError,
  });
  /** Jobs holding one of BullMQ's slots, from the moment they are taken (admission included). */
  const taken = new Set<string>();

  const isCancelled = async (jobId: string): Promise<boolean> =>
    (await commands.exists(keys.cancel(address, jobId))) === 1;

  const run = async (job: Job<JobSpecInput, JobResult>, token?: string, signal?: AbortSignal) => {
    const jobId = job.id as string;
    const attempt = job.attemptsMade + 1;
    const log = logger.child({ jobId, attempt });
    const { spec, pins } = await admitJob(job, {
      runtime: runtime.kind,
      queue: config.queue,
      liveRuntimes: async () => (await listWorkers(commands, address)).workers.map((w) => w.runtime),
      worker: workerInfo,
      log,
      policy,
      writeSideResult,
      signatures: { trusted, queue: config.queue, now: Date.now },
      onInvalid: (result) => finished(result),
      mountPathProblem: (path) => runtime.mountPathProblem(path),
    }).catch(async (error: unknown) => {
      if (!(error instanceof ForAnotherRuntimeError)) throw error;
      // Another live worker runs the runtime it asks for: back to the queue for it, no attempt spent.
      log.info(
        { runtime: error.runtime },
        'job asks for another runtime: put back for a worker that runs it',
      );
      await job.moveToDelayed(Date.now() + REROUTE_DELAY_MS, token);
      throw new DelayedError();
    });
    events.emit('job-admitted', { jobId, attempt });
    const controller = new AbortController();
    runs.set(jobId, controller);
    // BullMQ's own signal (worker.cancelJob / cancelAllJobs) stops the run too.
    signal?.addEventListener('abort', () => stopRun(jobId, (signal.reason as StopReason) ?? 'cancelled'), {
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
        ? await earlierRuns(history, jobId, job.progress, adoptable !== null, runtime.capabilities.adopt)
        : [];
    if (adoptable) events.emit('adopted', { jobId, containerId: adoptable.containerId });
    const run = { queue: config.queue, jobId, attempt };
    const executor = createExecutor(runtime, {
      name: containerName({ ...run, started: job.attemptsStarted, deployment }),
      labels: containerLabels({ ...run, workerId: config.workerId, deployment }),
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
        outputDir: logDirOf(config.logDir, run),
        enqueuedAt: job.timestamp,
        stop: controller.signal,
        isCancelled: () => isCancelled(jobId),
        publish: (progress) => job.updateProgress(progress as unknown as object),
        openLive: (stream) =>
          new LiveOutput(commands, keys.output(address, jobId, stream), config.liveOutputBytes, attempt, log),
        limits: config.limits ?? {
          pidsLimit: policy.policy.pidsLimit,
          maxOutputBytes: policy.policy.maxOutputBytes,
        },
        events,
      });
      const result = withEarlierRuns(outcome.result, earlier);
      if (outcome.interruptedBy === null) finished(result);
      if (outcome.interruptedBy === 'shutdown' || outcome.interruptedBy === 'detach') {
        // A stopped container goes before the job goes back: nobody may adopt its exit code.
        await outcome.release();
        await history.add(
          jobId,
          thisRun(
            result,
            outcome.interruptedBy === 'detach'
              ? 'worker shut down; container left running for the next worker to adopt'
              : 'worker shut down; container stopped, job put back without spending an attempt',
          ),
        );
        log.info(
          { detached: outcome.interruptedBy === 'detach' },
          'worker shutting down: job goes back to the queue without spending an attempt',
        );
        await job.moveToWait(token);
        throw new WaitingError();
      }
      // The rest wait until BullMQ has stored the result ('completed' / 'failed' below).
      releases.set(jobId, outcome.release);
      if (outcome.interruptedBy === 'lost-lock') {
        releaseNow(jobId);
        const message = 'lost the job lock: another worker may own this job; container left for it to adopt';
        await history.add(jobId, thisRun(result, message));
        throw new Error(message);
      }
      if (outcome.error) {
        // BullMQ may run it again: the next run's result lists this one.
        await history.add(jobId, thisRun(result));
        await writeSideResult(result);
        // No retry can bring an image that is neither on the host nor in the job's tarball.
        if (outcome.error instanceof ImageUnavailableError)
          throw new UnrecoverableError(outcome.error.message);
        // A swapped mount is a job the policy would refuse now: invalid, never retried.
        if (outcome.error instanceof MountChangedError) throw new UnrecoverableError(outcome.error.message);
        throw outcome.error;
      }
      return result;
    } finally {
      runs.delete(jobId);
      idle.runEnded();
    }
  };

  // Three plain parameters, so BullMQ hands over its signal (docs/pitfalls.md, "Abort signal").
  const processor = async (job: Job<JobSpecInput, JobResult>, token?: string, signal?: AbortSignal) => {
    const jobId = job.id as string;
    taken.add(jobId);
    presence.changed();
    try {
      return await run(job, token, signal);
    } finally {
      taken.delete(jobId);
      presence.changed();
    }
  };

  // BullMQ does not close a connection it was handed; we quit it after worker.close().
  const workerConnection = connect(redisUrl, onRedisError, tls);
  const worker = new BoundedWorker<JobSpecInput, JobResult>(config.queue, processor, {
    connection: workerConnection,
    prefix: config.prefix,
    concurrency: config.concurrency,
    lockDuration: config.lockDurationMs,
    // A crashed worker's job is noticed within one lock duration and adopted by the next worker;
    // repeated crashes must not turn a job into a failure (its container may still be fine).
    stalledInterval: config.lockDurationMs,
    maxStalledCount: 10,
    // Jobs leave their own retention to the worker (STEVEDORE_KEEP_FINISHED).
    removeOnComplete: retention.keep,
    removeOnFail: retention.keep,
    autorun: false,
  });
  // Off the job's path, once BullMQ has stored the result: a reader never lacks both copies.
  const retain = (kind: FinishedAs, jobId: string, result: JobResult | null): void => {
    const done = trimFinishedCopies(commands, address, jobId, result)
      .then(() => retention.finished(kind, jobId))
      .then(() => undefined)
      .catch((error: unknown) =>
        logger.warn(
          { err: error, jobId },
          'could not trim finished jobs in Redis; the next finished job retries',
        ),
      );
    cleanups.add(done);
    void done.finally(() => cleanups.delete(done));
  };
  worker.on('completed', (job, result) => {
    releaseNow(job.id as string);
    retain('completed', job.id as string, result);
  });
  worker.on('failed', (job) => {
    if (!job) return;
    releaseNow(job.id as string);
    // Set only when BullMQ will not run it again.
    if (job.finishedOn) retain('failed', job.id as string, null);
  });
  worker.on('lockRenewalFailed', (jobIds: string[]) => {
    for (const id of jobIds) stopRun(id, 'lost-lock');
  });
  worker.on(
    'error',
    throttled((error) => logger.error({ err: error }, 'worker error')),
  );
  const stopListening = await listenForCancels({
    subscriber: connect(redisUrl, onRedisError, tls),
    channel: keys.cancelChannel(address),
    onCancel: (jobId) => stopRun(jobId, 'cancelled'),
    logger,
    running: () => [...runs.keys()],
    isCancelled,
  });
  await worker.waitUntilReady();
  const queue = new Queue(config.queue, { connection: commands, prefix: config.prefix });
  // BullMQ re-emits its connection's errors here; without a listener it prints each with console.error.
  queue.on('error', onRedisError);
  let reconciling: Promise<void> | undefined;
  const reconcile = (): Promise<void> => {
    reconciling ??= reconcileContainers({
      runtime,
      queue,
      redis: commands,
      prefix: config.prefix,
      deployment,
      graceMs: config.lockDurationMs,
      logger,
      ownJobs: new Set([...runs.keys(), ...releases.keys()]),
    })
      .then((removed) => {
        if (removed.length > 0) events.emit('reconciled', { action: 'removed', count: removed.length });
      })
      .catch((error: unknown) =>
        logger.warn({ err: error }, 'could not reconcile leftover containers; continuing'),
      )
      .finally(() => {
        reconciling = undefined;
      });
    return reconciling;
  };
  await reconcile();
  // Again now and then: a job BullMQ failed on its own (stalled too often) leaves its container
  // to no worker, and no worker may start for a long time.
  const reconciler = setInterval(() => void reconcile(), config.lockDurationMs * RECONCILE_EVERY_LOCKS);
  reconciler.unref();
  idle.collectNow();
  await presence.start();
  void worker.run();
  logger.info(
    { queue: config.queue, concurrency: config.concurrency, runtime: config.runtime, policy: policy.source },
    'worker started',
  );

  let closing: Promise<void> | undefined;
  const whyNoJobs = (): string | null =>
    closing ? 'worker is closing' : worker.isPaused() ? 'worker is paused' : null;
  return {
    id: config.workerId,
    redisUrl,
    running: () => runs.size,
    queue: config.queue,
    capacity: config.concurrency,
    events,
    probe: () => probeWorker(commands, runtime, whyNoJobs()),
    whyNoJobs: () => whyNoJobs(),
    queueCounts: () => queue.getJobCounts(),
    close: (options = {}) => {
      closing ??= (async () => {
        const graceMs = options.graceMs ?? config.shutdownGraceMs;
        logger.info({ running: runs.size, graceMs }, 'worker closing: no new jobs');
        const closed = worker.close();
        // detach: let go of running containers at once; the next worker adopts them.
        const timer = setTimeout(
          () => {
            for (const id of runs.keys()) stopRun(id, config.onShutdown === 'detach' ? 'detach' : 'shutdown');
          },
          config.onShutdown === 'detach' ? 0 : graceMs,
        );
        await closed;
        await presence.stop();
        clearTimeout(timer);
        clearInterval(reconciler);
        idle.stop();
        await reconciling;
        await queue.close();
        for (const id of [...releases.keys()]) releaseNow(id);
        await Promise.all(cleanups);
        await runtime.close();
        await stopListening();
        for (const connection of [commands, workerConnection]) {
          await connection.quit().catch(() => connection.disconnect());
        }
        await embedded?.stop();
        logger.info('worker closed');
      })();
      return closing;
    },
  };
}
