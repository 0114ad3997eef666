/**
 * Which host may take a job whose earlier run has a container. A container lives on one engine,
 * and only a worker on that engine can adopt it; a worker elsewhere that ran the job would run it
 * a second time while the first container may still be running. So a worker on another engine
 * leaves such a job for the container's own host while any worker there is alive (presence seen
 * within STEVEDORE_HOST_DEAD_MS), and takes it once that host has been silent that long: then the
 * host counts as dead, its containers with it, and the job runs here.
 */

/** What the decision reads: the engine in the job's progress, this worker's, and the live ones. */
export interface HandoverFacts {
  /** The engine the job's latest run put its container on (progress.engine); absent: never started, or an older worker. */
  previousEngine: string | undefined;
  ownEngine: string;
  /** Whether this runtime's containers outlive their worker (capabilities.adopt). */
  canAdopt: boolean;
  /** Engines of the workers seen within the host-dead limit. */
  liveEngines: readonly string[];
}

/** null: take the job here. Otherwise the engine whose host should take it, and why. */
export function hostToWaitFor(facts: HandoverFacts): { engine: string; reason: string } | null {
  const { previousEngine, ownEngine, canAdopt, liveEngines } = facts;
  // A runtime whose containers end with their worker leaves nothing to adopt anywhere.
  if (!canAdopt || previousEngine === undefined || previousEngine === '' || previousEngine === ownEngine)
    return null;
  if (!liveEngines.includes(previousEngine)) return null;
  return {
    engine: previousEngine,
    reason: `its container is on engine ${previousEngine}, whose host is alive: a worker there adopts it, so it does not run twice`,
  };
}

/** The engine a job's progress names, if any. */
export function engineOfProgress(progress: unknown): string | undefined {
  if (typeof progress !== 'object' || progress === null) return undefined;
  const engine = (progress as { engine?: unknown }).engine;
  return typeof engine === 'string' && engine !== '' ? engine : undefined;
}
