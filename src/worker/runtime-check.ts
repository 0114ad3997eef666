import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import type { RuntimeKind } from '../executors/index.js';
import { InvalidSpecError } from '../jobs/errors.js';
import type { JobSpec } from '../jobs/spec.js';
import { settle } from './settlement.js';

/**
 * Where a job runs, by the runtime it names (`spec.runtime`): `here` when it names none or this
 * worker's; `elsewhere` when another live worker on the queue offers it (the job goes back to
 * wait for one); otherwise an InvalidSpecError that says which runtimes the queue offers.
 */
export type Route =
  | { to: 'here' }
  | { to: 'elsewhere'; runtime: string }
  | { to: 'nowhere'; error: InvalidSpecError };

export function routeJob(
  spec: Pick<JobSpec, 'runtime'>,
  workerRuntime: RuntimeKind,
  /** Runtimes of the queue's live workers, this one included (presence records). */
  liveRuntimes: readonly string[],
  queue: string,
): Route {
  if (spec.runtime === undefined || spec.runtime === workerRuntime) return { to: 'here' };
  if (liveRuntimes.includes(spec.runtime)) return { to: 'elsewhere', runtime: spec.runtime };
  const offered = [...new Set([workerRuntime, ...liveRuntimes.filter(Boolean)])].sort();
  return {
    to: 'nowhere',
    error: new InvalidSpecError([
      {
        path: 'runtime',
        message: `asks for runtime ${JSON.stringify(spec.runtime)}, but no live worker on queue ${JSON.stringify(queue)} runs it (they run ${offered.join(', ')}): start a worker there with STEVEDORE_RUNTIME=${spec.runtime}, submit to a queue whose workers run it, or drop the field`,
      },
    ]),
  };
}

/** Thrown by admission for a job another live worker's runtime should take; the worker puts it back. */
export class ForAnotherRuntimeError extends Error {
  constructor(readonly runtime: string) {
    super(`the job asks for runtime ${runtime}; it goes back to the queue for a worker that runs it`);
    this.name = 'ForAnotherRuntimeError';
  }
}

/**
 * Admission's answer for a job another live worker's runtime should take: back to the queue for
 * one (delayed, no attempt spent: rejects with the DelayedError BullMQ reads so). Any other
 * error is rethrown as it is.
 */
export async function putBackForItsRuntime(
  error: unknown,
  job: Pick<Job, 'moveToDelayed'>,
  token: string | undefined,
  log: Logger,
): Promise<never> {
  if (!(error instanceof ForAnotherRuntimeError)) throw error;
  const rerouted = settle({ rerouted: true }, Date.now());
  log.info({ runtime: error.runtime }, 'job asks for another runtime: put back for a worker that runs it');
  await job.moveToDelayed(rerouted.until, token);
  throw rerouted.error;
}
