import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { ContainerExecutor, ExecutorSpec } from '../executors/executor.js';
import { CommandNotFoundError, coerceError, type Phase, PhaseError } from '../jobs/errors.js';
import type { JobProgress, RunPhase } from '../jobs/progress.js';
import { type JobResult, terminationReason } from '../jobs/result.js';
import { type JobSpec, stdinBytes } from '../jobs/spec.js';
import { OutputCapture } from './output.js';

/** Why a run was asked to stop before its container finished on its own. */
export type StopReason = 'cancelled' | 'timeout' | 'lost-lock' | 'shutdown';

export interface RunContext {
  jobId: string;
  attempt: number;
  spec: JobSpec;
  executor: ContainerExecutor & { readonly containerId?: string };
  logger: Logger;
  worker: { host: string; id: string };
  /** Directory for this attempt's stdout/stderr files; null = keep only tails. */
  outputDir: string | null;
  /** When the job was enqueued (ms since epoch). */
  enqueuedAt: number;
  /** Aborted with a StopReason as its reason to stop the run. */
  stop: AbortSignal;
  /** The durable cancel flag; checked before the container is created and started. */
  isCancelled: () => Promise<boolean>;
  publish: (progress: JobProgress) => Promise<void>;
}

export interface RunOutcome {
  result: JobResult;
  /** Set when the run was stopped for a reason that is not a final result (lost lock, shutdown). */
  interruptedBy: 'lost-lock' | 'shutdown' | null;
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
  return reason === 'timeout' || reason === 'lost-lock' || reason === 'shutdown' ? reason : 'cancelled';
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
  let log = ctx.logger;
  let phase: Phase = 'admitted';
  let firstError: Error | null = null;
  let exitCode: number | null = null;
  let oomKilled = false;
  let startedAt: string | null = null;
  let stopReason: StopReason | null = null;
  let stopping: Promise<void> | null = null;

  const transition = async (next: RunPhase): Promise<void> => {
    const now = Date.now();
    if (next !== 'done') {
      phase = next;
      marks.push({ phase: next, at: now });
    }
    const at = new Date(now).toISOString();
    history.push({ phase: next, at });
    log.debug({ phase: next }, 'phase');
    await ctx
      .publish({
        phase: next,
        at,
        history: [...history],
        attempt: ctx.attempt,
        worker: ctx.worker.id,
        containerId: executor.containerId || undefined,
      })
      .catch((error: unknown) => log.warn({ err: error, phase: next }, 'could not publish progress'));
  };

  const checkStop = async (): Promise<void> => {
    if (stop.aborted) throw new StopRequested(stopReasonOf(stop));
    if (await ctx.isCancelled()) throw new StopRequested('cancelled');
  };

  const outputDir = ctx.outputDir;
  if (outputDir) await mkdir(outputDir, { recursive: true });
  const stdout = new OutputCapture(outputDir ? join(outputDir, 'stdout') : null);
  const stderr = new OutputCapture(outputDir ? join(outputDir, 'stderr') : null);

  const onStop = (): void => {
    stopReason ??= stopReasonOf(stop);
    if (phase !== 'running' || stopping) return;
    const graceMs = Math.round(spec.stopGraceSeconds * 1000);
    log.info({ reason: stopReason, graceMs }, 'stopping container');
    stopping = transition('stopping').then(() => executor.stop({ graceMs }));
    stopping.catch((error: unknown) => {
      firstError ??= coerceError(error);
      log.warn({ err: error }, 'stop failed');
    });
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
    await transition('admitted');
    await checkStop();
    await transition('loading-image');
    await executor.loadImage(spec.image, spec.imageTarball);
    await checkStop();
    await transition('creating');
    await executor.create(toExecutorSpec(spec, stdout, stderr));
    log = log.child({ containerId: executor.containerId });
    await checkStop();
    await transition('starting');
    await executor.start();
    startedAt = new Date().toISOString();
    await transition('running');
    // A stop that arrived while starting is acted on now that there is something to stop.
    if (stop.aborted || stopReason) onStop();
    exitCode = await executor.wait();
    await stopping;
    oomKilled = (await executor.exitDetails()).oomKilled;
  } catch (error) {
    if (error instanceof StopRequested) {
      stopReason ??= error.reason;
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
    stop.removeEventListener('abort', onStop);
    await transition('finalizing');
    for (const capture of [stdout, stderr]) {
      await capture.close().catch((error: unknown) => {
        log.warn({ err: error }, 'could not finish an output file');
        firstError ??= coerceError(error);
      });
    }
    try {
      await executor.close();
    } catch (error) {
      // The result is already known; a container we could not remove is logged, not reported as the run's failure.
      log.warn({ err: error }, 'could not remove the container');
    }
  }
  await transition('done');

  const finishedAt = Date.now();
  const phases: JobResult['phases'] = {};
  marks.forEach((mark, i) => {
    const end = marks[i + 1]?.at ?? finishedAt;
    phases[mark.phase] = (phases[mark.phase] ?? 0) + Math.max(0, end - mark.at);
  });

  const interruptedBy = stopReason === 'lost-lock' || stopReason === 'shutdown' ? stopReason : null;
  const userStop = stopReason === 'cancelled' || stopReason === 'timeout' ? stopReason : null;
  let state: JobResult['state'] = 'Failed';
  let reason: JobResult['reason'] = 'infra';
  let signal: string | null = null;
  if (exitCode !== null) {
    ({ state, reason, signal } = terminationReason({ exitCode, oomKilled, stopReason: userStop }));
  } else if (userStop) {
    state = 'Cancelled';
    reason = userStop;
  }
  const errorInfo =
    firstError === null
      ? null
      : { phase: firstError instanceof PhaseError ? firstError.phase : phase, message: firstError.message };

  const result: JobResult = {
    jobId: ctx.jobId,
    state,
    reason,
    exitCode,
    signal,
    oomKilled,
    runtime: await executor.runtime().catch(() => null),
    containerId: executor.containerId || null,
    cgroupId: executor.cgroupId() || null,
    image: spec.image,
    startedAt,
    finishedAt: new Date(finishedAt).toISOString(),
    phases,
    usage: null,
    stdout: stdout.summary(),
    stderr: stderr.summary(),
    worker: ctx.worker,
    attempt: ctx.attempt,
    adopted: false,
    attempts: [
      {
        attempt: ctx.attempt,
        worker: ctx.worker.id,
        state,
        reason,
        error: errorInfo?.message ?? null,
      },
    ],
    labels: spec.labels,
    error: errorInfo,
  };
  log.info({ state, reason, exitCode }, 'run finished');
  return {
    result,
    interruptedBy,
    error: state === 'Failed' ? (firstError ?? new PhaseError(phase, 'failed')) : null,
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
    stdin: input ? Readable.from([input]) : undefined,
    stdout,
    stderr,
  };
}
