import type { Logger } from 'pino';
import type { ContainerExecutor } from '../../executors/executor.js';
import type { OutputStream } from '../../jobs/keys.js';
import type { JobProgress } from '../../jobs/progress.js';
import type { JobSpec } from '../../jobs/spec.js';
import type { EventWriter } from '../gateway-jobs.js';
import type { MountPin } from '../mount-pins.js';
import type { WorkerEvents } from '../observer.js';
import type { LiveOutput } from '../output/live-output.js';
import type { UsageTiming } from './usage-tracker.js';

/** Bounds the worker puts on every job (WorkerConfig.limits). */
export interface RunLimits {
  pidsLimit: number;
  maxOutputBytes: number;
}

/** Everything one attempt's run is handed (runJob): the job, its executor, and where it reports. */
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
