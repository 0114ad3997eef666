import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import type { ContainerRuntime, RuntimeContainer } from '../../executors/index.js';
import type { RedisConnection } from '../../jobs/connection.js';
import { bullmqKeys } from '../../jobs/keys.js';
import { LABELS } from '../../jobs/names.js';
import { mayTouch, ownershipOf, recordedContainers } from './ownership.js';

/** What recovery asks of the runtime: find containers by label, look at one, remove one. */
export type RecoveryRuntime = Pick<ContainerRuntime, 'listContainers' | 'containerState' | 'removeContainer'>;

export interface ReconcileOptions {
  runtime: RecoveryRuntime;
  queue: Pick<Queue, 'name' | 'getJob'>;
  /** A plain connection for the lock look-ups. */
  redis: Pick<RedisConnection, 'exists'>;
  prefix: string;
  /** This deployment's id (jobs/deployment.ts): containers of another are never touched. */
  deployment: string;
  /** Containers younger than this are left alone: a live worker may be about to use them. */
  graceMs: number;
  logger: Logger;
  /** Job ids this worker is running right now. */
  ownJobs: ReadonlySet<string>;
}

/** Why a leftover container was removed, or null to keep it. */
export function leftoverVerdict(input: {
  state: string | null;
  lockHeld: boolean;
  ageMs: number;
  graceMs: number;
  ownJob: boolean;
  /** The engine's state of the container: "created" never ran and can never be adopted. */
  containerState?: string;
}): string | null {
  if (input.ownJob) return null;
  if (input.ageMs < input.graceMs) return null;
  if (input.state === null) return 'its job is unknown (removed or expired)';
  if (input.state === 'completed' || input.state === 'failed') return `its job is finished (${input.state})`;
  if (input.state === 'active' && input.lockHeld) return null;
  // The job will be taken again (or is being): the worker that takes it adopts a container that
  // ran, so only one that never started is in the way.
  if (input.containerState === 'created')
    return `it never started and its job is ${input.state} on no worker`;
  return null;
}

/**
 * Removes containers that this deployment labelled for this queue and that no live run owns:
 * their job is finished or unknown, or they never started and their job runs on no worker. A
 * container that ran and whose job will be taken again is kept for adoption. Runs when a worker
 * starts, so what a crashed worker left behind does not linger. Each removal is logged. Another
 * deployment's containers (same queue name, another Redis or prefix) are left alone, and so is
 * an unlabelled one this deployment's Redis does not name (ownership.ts).
 */
export async function reconcileContainers(options: ReconcileOptions): Promise<string[]> {
  const { runtime, queue, logger, redis } = options;
  const containers = await runtime.listContainers({ [LABELS.queue]: queue.name });
  const removed: string[] = [];
  for (const c of containers) {
    const jobId = c.labels[LABELS.jobId];
    if (!jobId) continue;
    if (ownershipOf(c, options.deployment, new Set()) === 'another deployment') continue;
    const job = await queue.getJob(jobId);
    if (!mayTouch(ownershipOf(c, options.deployment, recordedContainers(job)))) continue;
    const state = job ? await job.getState() : null;
    const lockHeld = job
      ? (await redis.exists(bullmqKeys.lock({ prefix: options.prefix, queue: queue.name }, jobId))) === 1
      : false;
    const verdict = leftoverVerdict({
      state: state === 'unknown' ? null : state,
      lockHeld,
      ageMs: Date.now() - c.createdAt,
      graceMs: options.graceMs,
      ownJob: options.ownJobs.has(jobId),
      containerState: c.state,
    });
    if (!verdict) continue;
    const attempt = c.labels[LABELS.attempt];
    if (await removeOrWarn(runtime, logger, c, { jobId, attempt, reason: verdict }, 'a leftover container')) {
      removed.push(c.id);
    }
  }
  return removed;
}

/**
 * Removes one container and logs that it did, or logs at warn that it could not and why (the
 * next reconcile tries again); true when it was removed.
 */
async function removeOrWarn(
  runtime: RecoveryRuntime,
  logger: Logger,
  c: RuntimeContainer,
  context: Record<string, unknown>,
  what: string,
): Promise<boolean> {
  try {
    await runtime.removeContainer(c.id);
  } catch (error) {
    logger.warn(
      { containerId: c.id, ...context, err: error },
      `could not remove ${what}; it is tried again at the next reconcile`,
    );
    return false;
  }
  logger.warn({ containerId: c.id, ...context }, `removed ${what}`);
  return true;
}

const CREATED_SETTLE_MS = 100;
const CREATED_SETTLE_POLLS = 30;

/**
 * Before a job that was taken before runs here: finds the container of its latest earlier
 * attempt on this engine to adopt, and removes any other, so one job never has two containers.
 */
export async function findAdoptable(
  runtime: RecoveryRuntime,
  run: {
    queue: string;
    jobId: string;
    attempt: number;
    /** This deployment's id: only its containers, and unlabelled ones `recorded` names, are looked at. */
    deployment: string;
    /** Container ids this deployment's Redis records for the job (its progress): recordedContainers(job). */
    recorded: ReadonlySet<string>;
  },
  logger: Logger,
  /** The runtime's capabilities.adopt: without it every earlier container is removed and the job runs again. */
  canAdopt = true,
): Promise<{ containerId: string; worker: string } | null> {
  const { jobId, attempt } = run;
  const listed = await runtime.listContainers({
    [LABELS.queue]: run.queue,
    [LABELS.jobId]: jobId,
  });
  const containers = listed.filter((c) => mayTouch(ownershipOf(c, run.deployment, run.recorded)));
  const attemptOf = (c: RuntimeContainer): number => Number(c.labels[LABELS.attempt] ?? 0);
  const sorted = [...containers].sort((a, b) => attemptOf(b) - attemptOf(a) || b.createdAt - a.createdAt);
  // A container still "created" may be one a live worker is about to start: give it a moment.
  for (let i = 0; i < CREATED_SETTLE_POLLS && sorted[0]?.state === 'created'; i++) {
    await new Promise((r) => setTimeout(r, CREATED_SETTLE_MS));
    const state = await runtime.containerState(sorted[0].id).catch(() => null);
    if (state === null) sorted.shift();
    else if (state !== 'created') sorted[0] = { ...sorted[0], state };
  }
  if (!canAdopt) {
    for (const c of sorted) {
      const context = { attempt: attemptOf(c), state: c.state };
      await removeOrWarn(runtime, logger, c, context, 'an earlier container (this runtime cannot adopt)');
    }
    return null;
  }
  const [latest, ...older] = sorted;
  for (const c of older) {
    await removeOrWarn(runtime, logger, c, { attempt: attemptOf(c) }, 'an older container of this job');
  }
  // Only a container of this same attempt is adopted: a crash or a detach leaves the attempt
  // count as it was, while an attempt that failed (say, the engine restarted under it) counts
  // one up, and its container's exit code is no answer to give. One that never started has none.
  if (!latest || latest.state === 'created' || attemptOf(latest) !== attempt) {
    if (latest) {
      const context = { attempt: attemptOf(latest), state: latest.state };
      await removeOrWarn(runtime, logger, latest, context, 'an earlier container that cannot be adopted');
      logger.info('running the job afresh');
    }
    return null;
  }
  return {
    containerId: latest.id,
    worker: latest.labels[LABELS.workerId] ?? 'unknown',
  };
}
