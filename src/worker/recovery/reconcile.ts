import type { Queue } from 'bullmq';
import type Dockerode from 'dockerode';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { bullmqKeys } from '../../jobs/keys.js';
import { LABELS, labelFilters } from '../../jobs/names.js';

export interface ReconcileOptions {
  docker: Dockerode;
  queue: Queue;
  /** A plain connection for the lock look-ups. */
  redis: Redis;
  prefix: string;
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
 * Removes containers that Stevedore labelled for this queue and that no live run owns: their
 * job is finished or unknown, or they never started and their job runs on no worker. A
 * container that ran and whose job will be taken again is kept for adoption. Runs when a worker
 * starts, so what a crashed worker left behind does not linger. Each removal is logged.
 */
export async function reconcileContainers(options: ReconcileOptions): Promise<string[]> {
  const { docker, queue, logger, redis } = options;
  const containers = await docker.listContainers({
    all: true,
    filters: { label: labelFilters(queue.name) },
  });
  const removed: string[] = [];
  for (const c of containers) {
    const jobId = c.Labels[LABELS.jobId];
    if (!jobId) continue;
    const job = await queue.getJob(jobId);
    const state = job ? await job.getState() : null;
    const lockHeld = job
      ? (await redis.exists(bullmqKeys.lock({ prefix: options.prefix, queue: queue.name }, jobId))) === 1
      : false;
    const verdict = leftoverVerdict({
      state: state === 'unknown' ? null : state,
      lockHeld,
      ageMs: Date.now() - c.Created * 1000,
      graceMs: options.graceMs,
      ownJob: options.ownJobs.has(jobId),
      containerState: c.State,
    });
    if (!verdict) continue;
    try {
      await docker.getContainer(c.Id).remove({ force: true, v: true });
      removed.push(c.Id);
      logger.warn(
        { containerId: c.Id, jobId, attempt: c.Labels[LABELS.attempt], reason: verdict },
        'removed a leftover container',
      );
    } catch (error) {
      logger.warn({ containerId: c.Id, jobId, err: error }, 'could not remove a leftover container');
    }
  }
  return removed;
}

const CREATED_SETTLE_MS = 100;
const CREATED_SETTLE_POLLS = 30;

/**
 * Before a job that was taken before runs here: finds the container of its latest earlier
 * attempt on this engine to adopt, and removes any other, so one job never has two containers.
 */
export async function findAdoptable(
  docker: Dockerode,
  queueName: string,
  jobId: string,
  attempt: number,
  logger: Logger,
): Promise<{ containerId: string; worker: string } | null> {
  const containers = await docker.listContainers({
    all: true,
    filters: { label: labelFilters(queueName, jobId) },
  });
  const attemptOf = (c: Dockerode.ContainerInfo): number => Number(c.Labels[LABELS.attempt] ?? 0);
  const sorted = [...containers].sort((a, b) => attemptOf(b) - attemptOf(a) || b.Created - a.Created);
  // A container still "created" may be one a live worker is about to start: give it a moment.
  for (let i = 0; i < CREATED_SETTLE_POLLS && sorted[0]?.State === 'created'; i++) {
    await new Promise((r) => setTimeout(r, CREATED_SETTLE_MS));
    const info = await docker
      .getContainer(sorted[0].Id)
      .inspect()
      .catch(() => null);
    if (!info) sorted.shift();
    else if (info.State.Status !== 'created') sorted[0] = { ...sorted[0], State: info.State.Status };
  }
  const [latest, ...older] = sorted;
  for (const c of older) {
    await docker
      .getContainer(c.Id)
      .remove({ force: true, v: true })
      .catch((error: unknown) =>
        logger.warn({ containerId: c.Id, err: error }, 'could not remove an earlier container'),
      );
    logger.warn({ containerId: c.Id, attempt: attemptOf(c) }, 'removed an older container of this job');
  }
  // Only a container of this same attempt is adopted: a crash or a detach leaves the attempt
  // count as it was, while an attempt that failed (say, the engine restarted under it) counts
  // one up, and its container's exit code is no answer to give. One that never started has none.
  if (!latest || latest.State === 'created' || attemptOf(latest) !== attempt) {
    if (latest) {
      await docker
        .getContainer(latest.Id)
        .remove({ force: true, v: true })
        .catch(() => undefined);
      logger.warn(
        { containerId: latest.Id, attempt: attemptOf(latest), state: latest.State },
        'removed an earlier container that cannot be adopted; running the job afresh',
      );
    }
    return null;
  }
  return {
    containerId: latest.Id,
    worker: latest.Labels[LABELS.workerId] ?? 'unknown',
  };
}
