import type { Logger } from 'pino';
import type { AttemptRecord } from '../../jobs/result.js';
import { earlierRuns, type RunHistory } from './history.js';
import { recordedContainers } from './ownership.js';
import { findAdoptable, type RecoveryRuntime } from './reconcile.js';

/** What the runs before this take left: a container to take over, and their history. */
export interface Retake {
  /** The container to adopt and the worker that left it; null: the job runs afresh. */
  adoptable: { containerId: string; worker: string } | null;
  /** The runs before this one, for the result's history. */
  earlier: AttemptRecord[];
}

/**
 * A job taken before (a worker crashed or detached, or its run is retried): its container is
 * adopted if it is still here and may be, so the job is not run twice, and any other earlier
 * container is removed (findAdoptable); its earlier runs are read, a run a dead worker left
 * unrecorded written first (earlierRuns). A first take has neither.
 */
export async function retake(
  job: { attemptsStarted: number; progress: unknown },
  run: {
    queue: string;
    jobId: string;
    attempt: number;
    deployment: string;
    /** The job's history as read at the take's start. */
    recordedRuns: readonly AttemptRecord[];
  },
  runtime: RecoveryRuntime,
  /** The runtime's capabilities.adopt. */
  canAdopt: boolean,
  history: Pick<RunHistory, 'add'>,
  log: Logger,
): Promise<Retake> {
  if (job.attemptsStarted <= 1) return { adoptable: null, earlier: [] };
  const { queue, jobId, attempt, deployment, recordedRuns } = run;
  const recorded = recordedContainers(job);
  const adoptable = await findAdoptable(
    runtime,
    { queue, jobId, attempt, deployment, recorded },
    log,
    canAdopt,
  );
  const earlier = await earlierRuns(history, recordedRuns, jobId, job.progress, adoptable !== null, canAdopt);
  return { adoptable, earlier };
}
