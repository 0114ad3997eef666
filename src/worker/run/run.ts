import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { ContainerExecutor, ExecutorSpec } from '../../executors/executor.js';
import {
  CommandNotFoundError,
  coerceError,
  InfrastructureError,
  type Phase,
  PhaseError,
} from '../../jobs/errors.js';
import type { OutputStream } from '../../jobs/keys.js';
import type { JobProgress, RunPhase } from '../../jobs/progress.js';
import type { JobResult, Usage } from '../../jobs/result.js';
import { type JobSpec, stdinBytes } from '../../jobs/spec.js';
import { keptSoFar, OutputCapture } from '../output/capture.js';
import { EventsLog } from '../output/events-log.js';
import type { LiveOutput } from '../output/live-output.js';
import { buildResult, type StopReason } from './result.js';
import { UsageTracker } from './usage-tracker.js';

export type { StopReason } from './result.js';

/** First usage sample soon after start (short jobs get one too), then every interval. */
const FIRST_USAGE_SAMPLE_MS = 500;
const DEFAULT_USAGE_INTERVAL_MS = 1_000;
/** Phase changes closer together than this are published as one progress write. */
const PROGRESS_COALESCE_MS = 100;
/** Removal attempts while the engine does not answer (1 s, 2 s, … apart: about 15 s in all). */
const RELEASE_TRIES = 6;

export interface RunContext {
  jobId: string;
  attempt: number;
  spec: JobSpec;
  executor: ContainerExecutor;
  logger: Logger;
  worker: { host: string; id: string };
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
  usageIntervalMs?: number;
  /** Take over this container (left by a worker that crashed or detached) instead of creating one. */
  adopt?: { containerId: string; fromWorker: string };
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

class StopRequested extends Error {
  constructor(readonly reason: StopReason) {
    super(`stop requested: ${reason}`);
    this.name = 'StopRequested';
  }
}

function stopReasonOf(signal: AbortSignal): StopReason {
  const reason = signal.reason as unknown;
  return reason === 'timeout' || reason === 'lost-lock' || reason === 'shutdown' || reason === 'detach'
    ? reason
    : 'cancelled';
}

/** What events.log says about the spec: limits and shapes, never env values. */
function describeSpec(spec: JobSpec): Record<string, unknown> {
  return {
    image: spec.image,
    imageTarball: spec.imageTarball ?? null,
    command: spec.command,
    envNames: Object.keys(spec.env),
    workingDir: spec.workingDir ?? null,
    mounts: Object.entries(spec.mounts).map(([to, m]) => `${m.hostPath}:${to}${m.readOnly ? ':ro' : ''}`),
    vcpus: spec.resources.vcpus ?? null,
    ramBytes: spec.resources.ram ?? null,
    gpus: spec.resources.gpus ?? null,
    network: spec.network,
    maxRunTimeSeconds: spec.maxRunTimeSeconds ?? null,
    stopGraceSeconds: spec.stopGraceSeconds,
    init: spec.init,
  };
}

/**
 * Drives one attempt of a job through the run state machine:
 * admitted → loading-image → creating → starting → running → finalizing → done, with
 * `stopping` on cancel, timeout, lost lock or shutdown. The result starts pessimistic (Failed)
 * and becomes Complete only once wait() returned an exit code. Always finalizes and closes the
 * executor; the first error is kept and later ones are logged.
 */
export async function runJob(ctx: RunContext): Promise<RunOutcome> {
  const { spec, executor, stop } = ctx;
  const history: { phase: RunPhase; at: string }[] = [];
  const marks: { phase: Phase | 'queued'; at: number }[] = [{ phase: 'queued', at: ctx.enqueuedAt }];
  const tracker = new UsageTracker();
  let log = ctx.logger;
  let phase: Phase = 'admitted';
  let firstError: Error | null = null;
  let exitCode: number | null = null;
  let oomKilled = false;
  let startedAt: string | null = null;
  let stopReason: StopReason | null = null;
  let stopping: Promise<void> | null = null;
  let sampler: NodeJS.Timeout | undefined;

  const outputDir = ctx.outputDir;
  if (outputDir) await mkdir(outputDir, { recursive: true });
  const file = (name: string): string | null => (outputDir ? join(outputDir, name) : null);
  const liveEvents = ctx.openLive?.('events') ?? null;
  const events = new EventsLog(file('events.log'), (line) => liveEvents?.push(line));
  /** A running container followed from now on, with no engine copy to replay: a gap in its output. */
  const noteOutputGap = (whileWhat: string): void =>
    events.write('warning', {
      message: `output written while ${whileWhat} is not kept (the log driver keeps no copy)`,
    });
  const [keptOut, keptErr] = ctx.adopt
    ? await Promise.all([keptSoFar(file('stdout')), keptSoFar(file('stderr'))])
    : [undefined, undefined];
  const stdout = new OutputCapture(file('stdout'), ctx.openLive?.('stdout') ?? null, keptOut);
  const stderr = new OutputCapture(file('stderr'), ctx.openLive?.('stderr') ?? null, keptErr);
  // Aborting this lets go of the container without stopping it (detach on shutdown).
  const letGo = new AbortController();

  // Progress is published off the critical path and coalesced: phases that follow each other
  // within PROGRESS_COALESCE_MS go out as one write, and while one write is in flight at most
  // one more is queued, sending the newest snapshot (it carries the whole history). The run
  // waits for Redis once, at the end, so "done" is visible before the result.
  let chain: Promise<void> = Promise.resolve();
  let queued = false;
  let latest: JobProgress | null = null;
  let coalescing: NodeJS.Timeout | undefined;
  const send = (): void => {
    clearTimeout(coalescing);
    coalescing = undefined;
    if (queued) return;
    queued = true;
    chain = chain.then(async () => {
      queued = false;
      const snapshot = latest;
      latest = null;
      if (!snapshot) return;
      await ctx
        .publish(snapshot)
        .catch((error: unknown) =>
          log.warn({ err: error, phase: snapshot.phase }, 'could not publish progress'),
        );
    });
  };
  const progress = (current: RunPhase, usage?: Usage): void => {
    latest = {
      phase: current,
      at: history.at(-1)?.at ?? new Date().toISOString(),
      history: [...history],
      attempt: ctx.attempt,
      worker: ctx.worker.id,
      containerId: executor.containerId || undefined,
      usage,
    };
    if (current === 'done') send();
    else coalescing ??= setTimeout(send, PROGRESS_COALESCE_MS);
  };

  const transition = (next: RunPhase): void => {
    const now = Date.now();
    if (next !== 'done') {
      phase = next;
      marks.push({ phase: next, at: now });
    }
    history.push({ phase: next, at: new Date(now).toISOString() });
    events.write(next);
    log.debug({ phase: next }, 'phase');
    progress(next);
  };

  // The durable flag is read at admission and right before start (one Redis round trip each);
  // in between, a cancel reaches the run through `stop` (the cancel channel).
  const checkSignal = (): void => {
    if (stop.aborted) throw new StopRequested(stopReasonOf(stop));
    // The max run time counts from admission: one that ran out while loading or creating
    // means the container is never started.
    if (stopReason === 'timeout') throw new StopRequested('timeout');
  };
  const checkStop = async (): Promise<void> => {
    checkSignal();
    if (await ctx.isCancelled()) throw new StopRequested('cancelled');
  };

  const onStop = (): void => {
    stopReason ??= stopReasonOf(stop);
    if (stopReason === 'detach') {
      events.write('detaching', { containerId: executor.containerId });
      letGo.abort('detach');
      return;
    }
    if (phase !== 'running' || stopping) return;
    if (stopReason === 'lost-lock') {
      // Another worker owns the job now. Kill and remove at once, so that it never finds (and
      // adopts) a container we killed: it either adopts the live one first or runs afresh.
      events.write('lost-lock', { containerId: executor.containerId });
      transition('stopping');
      letGo.abort('lost-lock');
      stopping = executor.close();
      stopping.catch((error: unknown) =>
        log.warn({ err: error }, 'could not remove the container after losing the lock'),
      );
      return;
    }
    const graceMs = Math.round(spec.stopGraceSeconds * 1000);
    log.info({ reason: stopReason, graceMs }, 'stopping container');
    events.write('stop-requested', { reason: stopReason, graceMs });
    transition('stopping');
    stopping = executor.stop({ graceMs });
    stopping.catch((error: unknown) => {
      firstError ??= coerceError(error);
      log.warn({ err: error }, 'stop failed');
    });
  };

  const sample = async (): Promise<void> => {
    try {
      const reading = await executor.usage();
      if (!reading) return;
      const warning = tracker.add(reading);
      if (warning) {
        events.write('warning', { message: warning });
        log.warn({ usage: reading }, warning);
      }
      if (phase === 'running') progress('running', tracker.usage ?? undefined);
    } catch (error) {
      log.debug({ err: error }, 'usage sample failed');
    }
  };
  const scheduleSample = (delayMs: number): void => {
    sampler = setTimeout(() => {
      void sample().then(() => {
        if (phase === 'running' || phase === 'stopping')
          scheduleSample(ctx.usageIntervalMs ?? DEFAULT_USAGE_INTERVAL_MS);
      });
    }, delayMs);
  };

  stop.addEventListener('abort', onStop, { once: true });
  const timer =
    spec.maxRunTimeSeconds === undefined
      ? undefined
      : setTimeout(() => {
          stopReason ??= 'timeout';
          onStop();
        }, spec.maxRunTimeSeconds * 1000);

  try {
    transition('admitted');
    events.write('spec', describeSpec(spec));
    events.write('worker', { ...ctx.worker, jobId: ctx.jobId, attempt: ctx.attempt });
    await checkStop();
    if (ctx.adopt && executor.capabilities.adopt) {
      const taken = await executor.adopt(
        ctx.adopt.containerId,
        { stdout, stderr },
        { stdout: keptOut?.bytes ?? 0, stderr: keptErr?.bytes ?? 0 },
      );
      log = log.child({ containerId: executor.containerId });
      events.write('adopted', {
        containerId: ctx.adopt.containerId,
        fromWorker: ctx.adopt.fromWorker,
        ...taken,
      });
      if (!taken.replayed && taken.running) noteOutputGap('no worker was attached');
      startedAt = new Date().toISOString();
      transition('running');
    } else {
      transition('loading-image');
      await executor.loadImage(spec.image, spec.imageTarball);
      events.write('runtime', { runtime: await executor.runtime() });
      checkSignal();
      transition('creating');
      await executor.create(toExecutorSpec(spec, stdout, stderr));
      log = log.child({ containerId: executor.containerId });
      events.write('created', { containerId: executor.containerId, cgroupId: executor.cgroupId() });
      await checkStop();
      transition('starting');
      await executor.start();
      startedAt = new Date().toISOString();
      transition('running');
    }
    scheduleSample(FIRST_USAGE_SAMPLE_MS);
    // A stop that arrived while starting is acted on now that there is something to stop.
    if (stop.aborted || stopReason) onStop();
    exitCode = await executor.wait(letGo.signal);
    clearTimeout(sampler);
    await stopping;
    oomKilled = (await executor.exitDetails()).oomKilled;
    events.write('exited', { exitCode, oomKilled });
    // The one place the run's final counters are read: after the exit, before close().
    const final = await executor.finalUsage();
    tracker.addFinal(final);
    if (final.missing) events.write('warning', { message: `usage incomplete: ${final.missing}` });
  } catch (error) {
    if (letGo.signal.aborted) {
      log.info({ reason: letGo.signal.reason }, 'let go of the container');
    } else if (error instanceof StopRequested) {
      stopReason ??= error.reason;
      events.write('stopped-before-start', { reason: error.reason });
      log.info({ reason: error.reason, phase }, 'stopped before the container started');
    } else if (error instanceof CommandNotFoundError) {
      exitCode = error.exitCode;
      firstError = error;
    } else {
      firstError = coerceError(error);
      log.warn({ err: firstError, phase }, 'run failed');
    }
  } finally {
    clearTimeout(timer);
    clearTimeout(sampler);
    stop.removeEventListener('abort', onStop);
    for (const reattached of executor.reattachments()) {
      events.write('engine-reattached', { ...reattached });
      if (reattached.running && !reattached.replayed) noteOutputGap('the docker engine was away');
    }
    if (firstError)
      events.write('error', {
        phase: firstError instanceof PhaseError ? firstError.phase : phase,
        message: firstError.message,
      });
    transition('finalizing');
    for (const capture of [stdout, stderr]) {
      await capture.close().catch((error: unknown) => {
        log.warn({ err: error }, 'could not finish an output file');
        firstError ??= coerceError(error);
      });
    }
  }
  // Only a running container is left for adoption; one not started yet is removed as usual.
  const detached = letGo.signal.reason === 'detach' && exitCode === null && startedAt !== null;
  if (detached) executor.detach();
  const release = async (): Promise<void> => {
    if (detached) return;
    // The engine may be restarting: try again for a while. The result is already known, so a
    // container we could not remove is logged (reconciliation removes it later), not reported as
    // the run's failure.
    for (let tries = 1; ; tries += 1) {
      try {
        await executor.close();
        return;
      } catch (error) {
        if (!(error instanceof InfrastructureError) || tries >= RELEASE_TRIES) {
          log.warn({ err: error, tries }, 'could not remove the container');
          return;
        }
        await sleep(tries * 1_000);
      }
    }
  };
  const finishedAt = Date.now();
  const result = buildResult({
    jobId: ctx.jobId,
    attempt: ctx.attempt,
    spec,
    worker: ctx.worker,
    runtime: await executor.runtime().catch(() => null),
    containerId: executor.containerId || null,
    cgroupId: executor.cgroupId() || null,
    exitCode,
    oomKilled,
    stopReason,
    firstError,
    phase,
    marks,
    startedAt,
    finishedAt,
    usage: tracker.usage,
    stdout,
    stderr,
    adoptedFrom: ctx.adopt ? { attempt: ctx.attempt, worker: ctx.adopt.fromWorker } : null,
    reattached: executor.reattachments().length > 0,
  });
  events.write('result', {
    state: result.state,
    reason: result.reason,
    exitCode,
    signal: result.signal,
    usage: result.usage,
  });
  transition('done');
  await events.close();
  if (events.failure)
    log.warn({ err: events.failure }, 'could not write events.log; its live copy has the lines');
  await Promise.all([liveEvents?.finish(), chain]);
  log.info({ state: result.state, reason: result.reason, exitCode }, 'run finished');
  const interruptedBy =
    stopReason === 'lost-lock' || stopReason === 'shutdown' || stopReason === 'detach' ? stopReason : null;
  return {
    result,
    release,
    interruptedBy,
    error: result.state === 'Failed' ? (firstError ?? new PhaseError(phase, 'failed')) : null,
  };
}

/** The executor's view of a job spec, with this run's output streams. */
export function toExecutorSpec(spec: JobSpec, stdout: OutputCapture, stderr: OutputCapture): ExecutorSpec {
  const input = stdinBytes(spec);
  return {
    image: spec.image,
    command: spec.command,
    env: spec.env,
    workingDir: spec.workingDir,
    bindMounts: spec.mounts,
    vcpus: spec.resources.vcpus ?? 0,
    ramBytes: spec.resources.ram ?? 0,
    enableNetwork: spec.network.enabled,
    networkMode: spec.network.mode,
    gpu: spec.resources.gpus
      ? { stack: spec.resources.gpus.stack, deviceCount: spec.resources.gpus.count }
      : undefined,
    init: spec.init,
    stdin: input ? Readable.from([input]) : undefined,
    stdout,
    stderr,
  };
}
