import { Queue } from 'bullmq';
import { pino } from 'pino';
import { readRedisTls } from '../config/redis.js';
import type { WorkerConfig } from '../config/worker.js';
import { createExecutor, openRuntime } from '../executors/index.js';
import { throttled } from '../jobs/connection.js';
import { keys } from '../jobs/keys.js';
import type { JobResult } from '../jobs/result.js';
import type { JobSpecInput } from '../jobs/spec.js';
import { PresenceWriter } from '../jobs/workers.js';
import { BoundedWorker } from './bounded-job.js';
import { bullmqOptions } from './bullmq-options.js';
import { listenForCancels } from './cancel-listener.js';
import { openWorkerRedis } from './connections.js';
import { EngineGate } from './engine-gate.js';
import { checkGatewayServe, readGatewayTls, startWorkerGateway } from './gateway-start.js';
import type { WorkerDeps, WorkerHandle } from './handle.js';
import { Housekeeping } from './housekeeping.js';
import { IdleCollector } from './idle-gc.js';
import { redisRecords } from './job-records.js';
import { WorkerEvents } from './observer.js';
import { engineDataPaths, loadWorkerPolicy, redisDataDir } from './policy-load.js';
import { probeWorker } from './probe.js';
import { createProcessor } from './processor.js';
import { startQueueSweep } from './queue-sweep.js';
import { confirmStoredResults } from './result-durability.js';
import { RunningJobs } from './running-jobs.js';
import { readCredentials, runtimeOptions } from './runtime-options.js';
import { TrustedKeys } from './trusted-keys.js';

export type { WorkerDeps, WorkerHandle } from './handle.js';
export type { WorkerProbe } from './probe.js';

/** Starts a worker that takes container jobs from the queue and runs them. */
export async function startWorker(config: WorkerConfig, deps: WorkerDeps = {}): Promise<WorkerHandle> {
  const logger = (deps.logger ?? pino({ level: config.logLevel })).child({ workerId: config.workerId });
  const events = deps.events ?? new WorkerEvents();
  const credentials = readCredentials(config, logger);
  const policy = await loadWorkerPolicy(config);
  const tls = readRedisTls(config.redisTls);
  if (credentials.hosts.length > 0) logger.info({ registryAuth: credentials }, 'registry credentials read');
  const trusted = config.trustedKeysDir ? await TrustedKeys.load(config.trustedKeysDir, logger) : undefined;
  checkGatewayServe(config.gateway, deps.serveGateway);
  const gatewayTls = await readGatewayTls(config.gateway);
  // Redis first: the deployment's id kept there names and labels everything the runtime makes
  // (its namespace holders, its cgroups), so the runtime is opened knowing it.
  const redis = await openWorkerRedis(config, tls, logger);
  const { commands, deployment } = redis;
  const runtime = await openRuntime(
    config.runtime,
    runtimeOptions(config, { deployment, credentials, logger }, deps.runtimeOptions),
  ).catch(async (error: unknown) => {
    await redis.abandon();
    throw error;
  });
  const engine = await runtime.engineId().catch(async (error: unknown) => {
    await runtime.close();
    await redis.abandon();
    throw error;
  });
  logger.info({ deployment, engine }, 'deployment id and engine read');
  const gateway =
    config.gateway && deps.serveGateway
      ? await startWorkerGateway({
          config: config.gateway,
          tls: gatewayTls,
          serve: deps.serveGateway,
          redis: commands,
          address: redis.address,
          workerId: config.workerId,
          lockDurationMs: config.lockDurationMs,
          policy: policy.policy.gateway,
          trusted,
          logger,
        }).catch(async (error: unknown) => {
          await runtime.close();
          await redis.abandon();
          throw error;
        })
      : undefined;
  policy.neverAllowed.push(...(await redisDataDir(commands)), ...(await engineDataPaths(runtime, logger)));

  let closing: Promise<void> | undefined;
  const whyNoJobs = (): string | null =>
    closing ? 'worker is closing' : (gate.reason ?? (worker.isPaused() ? 'worker is paused' : null));
  const jobs = new RunningJobs(logger, () => presence.changed());
  const idle = new IdleCollector(() => jobs.count > 0);
  const records = redisRecords(commands, redis.address, config.liveOutputBytes);
  const books = new Housekeeping({
    redis: commands,
    address: redis.address,
    runtime,
    deployment,
    lockDurationMs: config.lockDurationMs,
    keepFinished: config.keepFinished,
    running: () => jobs.running(),
    events,
    logger,
    // BullMQ's Worker stores results on the connection it is handed (redis.blocking): WAIT there.
    confirmStored:
      config.resultDurability && confirmStoredResults(redis.blocking, redis.address, config.resultDurability),
  });
  // Tells readers (`stevedore status`, the dashboard) that this worker serves the queue, and how busy it is.
  const presence = new PresenceWriter(commands, redis.address, {
    id: config.workerId,
    host: config.host,
    pid: process.pid,
    capacity: config.concurrency,
    runtime: runtime.kind,
    engine,
    running: () => jobs.takenIds(),
    notTaking: () => whyNoJobs(),
    onError: redis.onError,
  });
  // Past STEVEDORE_ENGINE_OUTAGE_MS without an answer from the engine, no more jobs are taken.
  const gate = new EngineGate({
    check: () => runtime.checkAvailable(),
    outageMs: config.engineOutageMs,
    close: () => worker.pause(true),
    open: () => worker.resume(),
    changed: () => presence.changed(),
    logger,
    runtime: runtime.kind,
  });
  const processor = createProcessor({
    config,
    engineAway: () => gate.reason,
    deployment,
    engine,
    runtime,
    makeExecutor: (options) => createExecutor(runtime, options),
    policy,
    trusted,
    records,
    jobs,
    books,
    idle,
    events,
    logger,
    gateways: gateway?.jobs,
  });
  const worker = new BoundedWorker<JobSpecInput, JobResult>(
    config.queue,
    processor,
    bullmqOptions(config, redis.blocking, books.retention.keep),
  );
  books.follow(worker);
  worker.on('lockRenewalFailed', (jobIds: string[]) => {
    for (const id of jobIds) jobs.stop(id, 'lost-lock');
  });
  worker.on(
    'error',
    throttled((error) => logger.error({ err: error }, 'worker error')),
  );
  const stopListening = await listenForCancels({
    subscriber: redis.subscriber,
    channel: keys.cancelChannel(redis.address),
    onCancel: (jobId) => jobs.stop(jobId, 'cancelled'),
    logger,
    running: () => jobs.running(),
    isCancelled: records.isCancelled,
  });
  await worker.waitUntilReady();
  const queue = new Queue(config.queue, { connection: commands, prefix: config.prefix });
  // BullMQ re-emits its connection's errors here; without a listener it prints each with console.error.
  queue.on('error', redis.onError);
  await books.startReconciling(queue);
  const stopSweeping = startQueueSweep({ redis: commands, queue, address: redis.address, logger });
  idle.collectNow();
  await presence.start();
  gate.start();
  void worker.run();
  logger.info(
    { queue: config.queue, concurrency: config.concurrency, runtime: config.runtime, policy: policy.source },
    'worker started',
  );

  return {
    id: config.workerId,
    redis: redis.target,
    running: () => jobs.count,
    queue: config.queue,
    capacity: config.concurrency,
    events,
    probe: () => probeWorker(commands, runtime, whyNoJobs()),
    whyNoJobs: () => whyNoJobs(),
    queueCounts: () => queue.getJobCounts(),
    close: (options = {}) => {
      closing ??= (async () => {
        const graceMs = options.graceMs ?? config.shutdownGraceMs;
        logger.info({ running: jobs.count, graceMs }, 'worker closing: no new jobs');
        await gate.stop();
        const closed = worker.close();
        // detach: let go of running containers at once; the next worker adopts them.
        const detach = config.onShutdown === 'detach';
        const timer = setTimeout(
          () => {
            for (const id of jobs.running()) jobs.stop(id, detach ? 'detach' : 'shutdown');
          },
          detach ? 0 : graceMs,
        );
        await closed;
        await presence.stop();
        clearTimeout(timer);
        idle.stop();
        await books.stopReconciling();
        await stopSweeping();
        await queue.close();
        await books.drain();
        // After the jobs: their sessions ended with them, and a detached job's are told so.
        await gateway?.close();
        await runtime.close();
        await stopListening();
        await redis.close();
        logger.info('worker closed');
      })();
      return closing;
    },
  };
}
