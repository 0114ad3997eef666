import type { Usage } from './result.js';

/** The phases of the run state machine, in order (see DESIGN.md). */
export type RunPhase =
  | 'admitted'
  | 'loading-image'
  | 'creating'
  | 'starting'
  | 'running'
  | 'stopping'
  | 'finalizing'
  | 'done';

/** Published as BullMQ job progress on every transition, so anyone can watch a job. */
export interface JobProgress {
  phase: RunPhase;
  /** ISO time of the latest transition. */
  at: string;
  /** Every transition so far, in order. */
  history: { phase: RunPhase; at: string }[];
  attempt: number;
  worker: string;
  containerId?: string;
  usage?: Usage;
}
