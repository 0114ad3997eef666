/**
 * Which host may take a job whose earlier run has a container. A container lives on one engine,
 * and only a worker on that engine can adopt it; a worker elsewhere that ran the job would run it
 * a second time while the first container may still be running. So a worker on another engine
 * leaves such a job for the container's own host while any worker there is alive (presence seen
 * within STEVEDORE_HOST_DEAD_MS), and takes it once that host has been silent that long: then the
 * host counts as dead, its containers with it, and the job runs here.
 */

/** What the first half of the decision reads: no Redis, so most retakes cost nothing more. */
export interface HandoverFacts {
  /** The engine the job's latest run put its container on (progress.engine); absent: never started, or an older worker. */
  previousEngine: string | undefined;
  ownEngine: string;
  /** Whether this runtime's containers outlive their worker (capabilities.adopt). */
  canAdopt: boolean;
}

/**
 * The engine that may still hold the job's container when it is not this worker's, else null.
 * Only then does the caller read which engines are alive (presence) and, if that one is, put
 * the job back with waitingReason(engine).
 */
export function engineElsewhere(facts: HandoverFacts): string | null {
  const { previousEngine, ownEngine, canAdopt } = facts;
  // A runtime whose containers end with their worker leaves nothing to adopt anywhere.
  if (!canAdopt || previousEngine === undefined || previousEngine === ownEngine) return null;
  return previousEngine;
}

/** Why the job goes back for the host of `engine`, for the log. */
export function waitingReason(engine: string): string {
  return `its container is on engine ${engine}, whose host is alive: a worker there adopts it, so it does not run twice`;
}

/** The engine a job's progress names, if any. */
export function engineOfProgress(progress: unknown): string | undefined {
  if (typeof progress !== 'object' || progress === null) return undefined;
  const engine = (progress as { engine?: unknown }).engine;
  return typeof engine === 'string' && engine !== '' ? engine : undefined;
}
