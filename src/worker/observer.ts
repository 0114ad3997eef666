import { EventEmitter } from 'node:events';
import type { JobResult } from '../jobs/result.js';

/** What a pull of one job's image came to: its own pull, one it waited on, or a failure. */
export type PullResult = 'pulled' | 'shared' | 'failed';

/** What reconciling did with a leftover container. */
export type ReconcileAction = 'removed';

/**
 * The worker's events, for the HTTP pieces (metrics, dashboard) to subscribe to. They are the
 * worker's public face: listeners see these payloads and never the run's internals.
 */
export interface WorkerEventMap {
  /** A job passed admission and its run begins. */
  'job-admitted': [{ jobId: string; attempt: number }];
  /** The run left `phase` after `seconds` (queued: since it was enqueued). */
  'phase-ended': [{ jobId: string; phase: string; seconds: number }];
  /** An attempt ended with a result (not one put back by a shutdown or a lost lock). */
  'job-finished': [{ jobId: string; queue: string; state: JobResult['state']; reason: JobResult['reason'] }];
  /** A job's image came from a registry, or its pull failed. */
  'pull-done': [{ jobId: string; result: PullResult; seconds: number }];
  /** Bytes a container wrote to one stream during an attempt. */
  'output-bytes': [{ jobId: string; stream: 'stdout' | 'stderr'; bytes: number }];
  /** A container a crashed or detached worker left running was taken over. */
  adopted: [{ jobId: string; containerId: string }];
  /** Reconciling acted on leftover containers. */
  reconciled: [{ action: ReconcileAction; count: number }];
}

/** A typed emitter of WorkerEventMap; pass one in (WorkerDeps.events) to observe a worker. */
export class WorkerEvents extends EventEmitter<WorkerEventMap> {}

/** An attempt's result, told to the events once (not for runs put back by a shutdown or a lost lock). */
export function tellFinished(events: WorkerEvents, queue: string, result: JobResult): void {
  const { jobId, state, reason } = result;
  events.emit('job-finished', { jobId, queue, state, reason });
  for (const stream of ['stdout', 'stderr'] as const) {
    if (result[stream].bytes > 0) events.emit('output-bytes', { jobId, stream, bytes: result[stream].bytes });
  }
}
