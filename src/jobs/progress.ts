import type { Phase } from './errors.js';
import type { Usage } from './result.js';
import type { Granted } from './retry.js';

/** The phases of the run state machine (see DESIGN.md): the run's own phases of `Phase`, and `done`. */
export type RunPhase = Exclude<Phase, 'validating' | 'exec' | 'closing'> | 'done';

/** Where an image pull is, while a run waits in loading-image. */
export interface PullProgress {
  image: string;
  layersDone: number;
  layers: number;
  /** Bytes downloaded so far, of `totalBytes` known so far (layers announce their size as they start). */
  bytes: number;
  totalBytes: number;
}

/** Published as BullMQ job progress on every transition, so anyone can watch a job. */
export interface JobProgress {
  phase: RunPhase;
  /** ISO time of the latest transition. */
  at: string;
  /** Every transition so far, in order. */
  history: { phase: RunPhase; at: string }[];
  attempt: number;
  worker: string;
  /** The engine the container lives on (ContainerRuntime.engineId): only a worker there may adopt it. */
  engine?: string;
  containerId?: string;
  usage?: Usage;
  /** While loading-image pulls (or waits on another job's pull of the same image). */
  pull?: PullProgress;
  /**
   * The reruns each budget of the job's retry rules grants, as the worker running it counts them
   * (its policy's cap included); what a status counts the history's spending against.
   */
  budgets?: Granted;
}
