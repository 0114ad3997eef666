import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import type { JobRecords } from './job-records.js';
import { engineElsewhere, engineOfProgress, waitingReason } from './recovery/handover.js';
import { settle } from './settlement.js';

/**
 * The worker's side of the handover (recovery/handover.ts), asked once a job taken again is
 * admitted: when its container may still run on another engine whose host is alive, the job goes
 * back to the queue for that host (delayed, no attempt spent: rejects with the DelayedError
 * BullMQ reads so). Resolves when the job may run here. Presence is read only when the container
 * may be elsewhere.
 */
export async function leaveForItsHost(
  job: Pick<Job, 'attemptsStarted' | 'progress' | 'moveToDelayed'>,
  here: {
    /** This worker's engine (ContainerRuntime.engineId). */
    engine: string;
    /** The runtime's capabilities.adopt. */
    canAdopt: boolean;
    /** STEVEDORE_HOST_DEAD_MS: a host silent this long counts as dead. */
    hostDeadMs: number;
  },
  records: Pick<JobRecords, 'liveEngines'>,
  token: string | undefined,
  log: Logger,
): Promise<void> {
  if (job.attemptsStarted <= 1) return;
  const elsewhere = engineElsewhere({
    previousEngine: engineOfProgress(job.progress),
    ownEngine: here.engine,
    canAdopt: here.canAdopt,
  });
  if (elsewhere === null || !(await records.liveEngines(here.hostDeadMs)).includes(elsewhere)) return;
  const handedOver = settle({ rerouted: true }, Date.now());
  log.info(
    { engine: elsewhere, reason: waitingReason(elsewhere) },
    'job left for the host that holds its container: put back, no attempt spent',
  );
  await job.moveToDelayed(handedOver.until, token);
  throw handedOver.error;
}
