import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { ContainerExecutor } from '../../executors/executor.js';
import { InfrastructureError } from '../../jobs/errors.js';

/** Removal attempts while the engine does not answer (1 s, 2 s, … apart: about 15 s in all). */
const RELEASE_TRIES = 6;

/**
 * Removes the container through executor.close(), trying again for a while when the engine may
 * be restarting. The result is already known by then, so a container that could not be removed
 * is logged (reconciliation removes it later), not reported as the run's failure.
 */
export async function releaseContainer(
  executor: ContainerExecutor,
  log: Logger,
  pause: (ms: number) => Promise<unknown> = sleep,
): Promise<void> {
  for (let tries = 1; ; tries += 1) {
    try {
      await executor.close();
      return;
    } catch (error) {
      if (!(error instanceof InfrastructureError) || tries >= RELEASE_TRIES) {
        log.warn({ err: error, tries }, 'could not remove the container');
        return;
      }
      await pause(tries * 1_000);
    }
  }
}
