import type { Logger } from 'pino';
import type { ContainerExecutor } from '../../executors/executor.js';
import { CommandNotFoundError, MountChangedError, PhaseError } from '../../jobs/errors.js';
import type { OutputStream } from '../../jobs/keys.js';
import type { JobProgress, RunPhase } from '../../jobs/progress.js';
import type { JobResult } from '../../jobs/result.js';
import type { JobSpec } from '../../jobs/spec.js';
import { timeoutField, timeoutsOf } from '../../jobs/timeouts.js';
import type { EventWriter } from '../gateway-jobs.js';
import type { MountPin } from '../mount-pins.js';
import type { WorkerEvents } from '../observer.js';
import type { LiveOutput } from '../output/live-output.js';
import { describeSpec, toExecutorSpec } from './executor-spec.js';
import { loadRunImage } from './image-load.js';
import { RunLedger } from './ledger.js';
import { checkHostPaths, checkMounted } from './mount-check.js';
import { ProgressPublisher } from './progress.js';
import { releaseContainer } from './release.js';
import { buildResult } from './result.js';
import { RunOutput } from './run-output.js';
import { StopRequested, StopSources } from './stop.js';
import { DEFAULT_USAGE_TIMING, UsageSampler, type UsageTiming } from './usage-tracker.js';

export type { StopReason } from './result.js';

/** Bounds the worker puts on every job (WorkerConfig.limits). */
export interface RunLimits {
  pidsLimit: number;
  maxOutputBytes: number;
}

export interface RunContext {
  jobId: string;
  attempt: number;
  spec: JobSpec;
  /** What each mount's host path named at admission; checked again before create and after start. */
  pins?: readonly MountPin[];
  executor: ContainerExecutor;
  logger: Logger;
  worker: { host: string; id: string };
  /** The engine this worker's runtime runs on (ContainerRuntime.engineId), published in progress. */
  engine?: string;
  /** Directory for this attempt's stdout, stderr and events.log; null = keep only tails. */
  outputDir: string | null;
  /** When the job was enqueued (ms since epoch). */
  enqueuedAt: number;
  /** Aborted with a StopReason as its reason to stop the run. */
  stop: AbortSignal;
  /** The durable cancel flag; checked before the container is created and started. */
  isCancelled: () => Promise<boolean>;
  publish: (progress: JobProgress) => Promise<void>;
  /** Bounded live copy of a stream in Redis; absent = none. */
  openLive?: (stream: OutputStream) => LiveOutput;
  usageTiming?: UsageTiming;
  /** Take over this container (left by a worker that crashed or detached) instead of creating one. */
  adopt?: { containerId: string; fromWorker: string };
  /** The worker's bounds on every job: processes per container, bytes per output stream on disk. */
  limits: RunLimits;
  /** The worker's events: phase ends and pulls are told here (metrics); absent = nobody listens. */
  events?: WorkerEvents;
  /**
   * Opens the job's exec gateway once its container runs (STEVEDORE_GATEWAY; absent = none);
   * sessions write their audit lines with `write`. What it returns ends them, before events.log closes.
   */
  openGateway?: (write: EventWriter) => Promise<(why: string) => Promise<void>>;
}

export interface RunOutcome {
  result: JobResult;
  /**
   * Removes the container. Not started yet: the worker calls it once the result is safely in
   * Redis, so a worker killed in between leaves a container to adopt, never a lost result.
   */
  release: () => Promise<void>;
  /** Set when the run was stopped for a reason that is not a final result (lost lock, shutdown). */
  interruptedBy: 'lost-lock' | 'shutdown' | 'detach' | null;
  /** The first error, when the run failed for an infrastructure reason. */
  error: Error | null;
}

/**
 * Drives one attempt of a job through the run state machine (DESIGN.md):
 * admitted → loading-image → creating → starting → running → finalizing → done, with
 * `stopping` on cancel, timeout, lost lock or shutdown. Pessimistic: the result is Failed until
 * wait() gives an exit code. Always finalizes; the first error is kept, later ones are logged.
 */
export async function runJob(ctx: RunContext): Promise<RunOutcome> {
  const { spec, executor } = ctx;
  const pins = ctx.pins ?? [];
  const state = new RunLedger(ctx.enqueuedAt, ctx.logger);
  const output = await RunOutput.open(
    ctx.outputDir,
    ctx.openLive,
    ctx.adopt !== undefined,
    ctx.limits.maxOutputBytes,
  );
  const { events } = output;
  const progress = new ProgressPublisher(
    ctx.publish,
    {
      attempt: ctx.attempt,
      worker: ctx.worker.id,
      engine: ctx.engine,
      containerId: () => executor.containerId,
    },
    () => state.log,
  );
  const transition = (next: RunPhase): void => {
    const left = state.marks.at(-1);
    state.enter(next);
    if (left && next !== left.phase) {
      const seconds = (Date.now() - left.at) / 1000;
      ctx.events?.emit('phase-ended', { jobId: ctx.jobId, phase: left.phase, seconds });
    }
    events.write(next);
    stops.entered(next);
    state.log.debug({ phase: next }, 'phase');
    progress.update(next, state.history);
  };
  const stops = new StopSources({
    signal: ctx.stop,
    isCancelled: ctx.isCancelled,
    timeouts: timeoutsOf(spec),
    timeoutField: (name) => timeoutField(name, spec),
    lastOutputAt: () => Math.max(output.stdout.lastBytesAt, output.stderr.lastBytesAt),
    graceMs: Math.round(spec.stopGraceSeconds * 1000),
    executor,
    state,
    events,
    transition,
  });
  const sampler = new UsageSampler(() => executor.usage(), ctx.usageTiming ?? DEFAULT_USAGE_TIMING, {
    sampled: (usage, warning, reading) => {
      if (warning) {
        events.write('warning', { message: warning });
        state.log.warn({ usage: reading }, warning);
      }
      if (state.phase === 'running') progress.update('running', state.history, { usage: usage ?? undefined });
    },
    failed: (error) => state.log.debug({ err: error }, 'usage sample failed'),
  });

  let closeGateway: ((why: string) => Promise<void>) | undefined;
  try {
    transition('admitted');
    events.write('spec', describeSpec(spec));
    events.write('worker', { ...ctx.worker, jobId: ctx.jobId, attempt: ctx.attempt });
    events.write('limits', { ...ctx.limits });
    await stops.checkDurable();
    if (ctx.adopt && executor.capabilities.adopt) {
      const streams = { stdout: output.stdout, stderr: output.stderr };
      const taken = await executor.adopt(ctx.adopt.containerId, streams, output.kept);
      state.log = state.log.child({ containerId: executor.containerId });
      state.image = taken.image;
      events.write('adopted', { ...ctx.adopt, ...taken });
      if (!taken.replayed && taken.running) output.noteGap('no worker was attached');
      if (!taken.running) stops.noteAdoptedExited();
      else closeGateway = await openGateway(ctx, events, state.log);
    } else {
      transition('loading-image');
      const image = await loadRunImage({
        spec,
        executor,
        events,
        stops,
        onPull: (pull) => progress.update('loading-image', state.history, { pull }),
        onPulled: (result, seconds) => ctx.events?.emit('pull-done', { jobId: ctx.jobId, result, seconds }),
      });
      state.image = { imageId: image.imageId, imageDigest: image.imageDigest };
      events.write('runtime', { runtime: await executor.runtime() });
      stops.check();
      transition('creating');
      // The image load took a while: the host paths must still name what admission checked.
      await checkHostPaths(pins, 'creating');
      await executor.create(toExecutorSpec(spec, output.stdout, output.stderr, ctx.limits, ctx), image);
      state.log = state.log.child({ containerId: executor.containerId });
      events.write('created', { containerId: executor.containerId, cgroupId: executor.cgroupId() });
      await stops.checkDurable();
      transition('starting');
      // Again just before the engine binds them, so what is left open is start itself: what got
      // bound is compared right after it, and the container stopped on a difference.
      await checkHostPaths(pins, 'starting');
      await executor.start();
      await checkStartedMounts(executor, pins, events, state.log);
      closeGateway = await openGateway(ctx, events, state.log);
    }
    state.startedAt = new Date().toISOString();
    transition('running');
    sampler.start();
    // A stop that arrived while starting is acted on now that there is something to stop.
    stops.actOnPending();
    state.exitCode = await executor.wait(stops.letGo.signal);
    // It exited before a detach or a lost lock could let go of it: the exit code is the answer.
    if (state.stopReason === 'detach' || state.stopReason === 'lost-lock') state.stopReason = null;
    sampler.stop();
    stops.dispose();
    await stops.settled();
    const details = await executor.exitDetails();
    state.oomKilled = details.oomKilled;
    if (details.outputCut) events.write('warning', { message: details.outputCut });
    state.limitsNotApplied = details.notApplied;
    for (const note of details.notApplied) events.write('warning', { message: `limit not applied: ${note}` });
    events.write('exited', { exitCode: state.exitCode, oomKilled: state.oomKilled });
    // The one place the run's final counters are read: after the exit, before close().
    const final = await executor.finalUsage();
    sampler.tracker.addFinal(final);
    if (final.missing) events.write('warning', { message: `usage incomplete: ${final.missing}` });
  } catch (error) {
    if (stops.letGo.signal.aborted) {
      state.log.info({ reason: stops.letGo.signal.reason }, 'let go of the container');
    } else if (error instanceof StopRequested) {
      state.stopReason ??= error.reason;
      events.write('stopped-before-start', { reason: error.reason });
      state.log.info({ reason: error.reason, phase: state.phase }, 'stopped before the container started');
    } else if (error instanceof CommandNotFoundError) {
      state.exitCode = error.exitCode;
      state.keepError(error);
    } else {
      state.log.warn({ err: state.keepError(error), phase: state.phase }, 'run failed');
    }
  } finally {
    stops.dispose();
    sampler.stop();
    await closeGateway?.(whyGatewayCloses(state.stopReason));
    for (const reattached of executor.reattachments()) {
      events.write('engine-reattached', { ...reattached });
      if (reattached.running && !reattached.replayed) output.noteGap('the docker engine was away');
    }
    const { firstError } = state;
    if (firstError) events.write('error', { phase: state.errorPhase, message: firstError.message });
    transition('finalizing');
    await output.closeStreams((error) => {
      state.log.warn({ err: state.keepError(error) }, 'could not finish an output file');
    });
  }

  // Only a started container is left for adoption (by the next worker after a detach, by the
  // job's new owner after a lost lock), and only on a runtime that can adopt; one not started yet
  // is removed as usual, and so is one nobody could adopt (the next owner runs the job again).
  const detached =
    executor.capabilities.adopt &&
    (state.stopReason === 'detach' || state.stopReason === 'lost-lock') &&
    state.exitCode === null &&
    state.startedAt !== null;
  if (detached) executor.detach();
  const result = buildResult({
    jobId: ctx.jobId,
    attempt: ctx.attempt,
    spec,
    worker: ctx.worker,
    runtime: await executor.runtime().catch(() => null),
    containerId: executor.containerId || null,
    cgroupId: executor.cgroupId() || null,
    image: state.image,
    exitCode: state.exitCode,
    oomKilled: state.oomKilled,
    limitsNotApplied: state.limitsNotApplied,
    stopReason: state.stopReason,
    timeout: state.stopReason === 'timeout' ? state.timeout : null,
    firstError: state.firstError,
    errorPhase: state.errorPhase,
    marks: state.marks,
    startedAt: state.startedAt,
    finishedAt: Date.now(),
    usage: sampler.tracker.usage,
    stdout: output.stdout,
    stderr: output.stderr,
    adoptedFrom: ctx.adopt ? { attempt: ctx.attempt, worker: ctx.adopt.fromWorker } : null,
    reattached: executor.reattachments().length > 0,
  });
  const { state: final, reason, signal, usage } = result;
  events.write('result', { state: final, reason, exitCode: state.exitCode, signal, usage });
  transition('done');
  await Promise.all([output.closeEvents(state.log), progress.flushed()]);
  state.log.info({ state: final, reason, exitCode: state.exitCode }, 'run finished');
  return {
    result,
    release: detached ? async () => undefined : () => releaseContainer(executor, state.log),
    interruptedBy: state.interruptedBy,
    error: final === 'Failed' ? (state.firstError ?? new PhaseError(state.errorPhase, 'failed')) : null,
  };
}

/** Why open exec sessions end, as their client is told. */
function whyGatewayCloses(stopReason: RunLedger['stopReason']): string {
  switch (stopReason) {
    case null:
      return 'its container exited';
    case 'detach':
      return 'this worker let go of it to shut down; the next worker adopts it, exec again then';
    case 'lost-lock':
      return 'this worker lost its lock on it; exec again once another worker has it';
    default:
      return `its run was stopped: ${stopReason}`;
  }
}

/** The job's gateway, once its container runs; a gateway that cannot open is a warning, never the run's end. */
async function openGateway(
  ctx: RunContext,
  events: RunOutput['events'],
  log: Logger,
): Promise<((why: string) => Promise<void>) | undefined> {
  if (!ctx.openGateway) return undefined;
  try {
    return await ctx.openGateway((event, details) => events.write(event, details));
  } catch (error) {
    const message = `the job's gateway did not open (exec and port-forward cannot reach it): ${error instanceof Error ? error.message : String(error)}`;
    events.write('warning', { message });
    log.warn({ err: error }, message);
    return undefined;
  }
}

/**
 * The engine bound the mounts at start: what the container got must be what admission checked.
 * On a difference the container is stopped at once, before anything else, and the run fails.
 */
async function checkStartedMounts(
  executor: ContainerExecutor,
  pins: readonly MountPin[],
  events: RunOutput['events'],
  log: Logger,
): Promise<void> {
  if (pins.length === 0) return;
  try {
    const pid = await executor.pid().catch((error: unknown) => {
      log.warn(
        { err: error },
        "the container's process could not be asked for; its mounts are checked on the host",
      );
      return 0;
    });
    const unchecked = await checkMounted(pins, pid);
    if (unchecked) {
      events.write('warning', { message: unchecked });
      log.warn(unchecked);
    }
  } catch (error) {
    if (error instanceof MountChangedError) {
      log.warn({ err: error }, 'a mount is not what admission checked: stopping the container');
      await executor.stop({ graceMs: 0 }).catch((stopError: unknown) => {
        log.warn({ err: stopError }, 'stopping the container with a swapped mount failed');
      });
    }
    throw error;
  }
}
