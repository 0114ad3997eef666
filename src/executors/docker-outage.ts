import { setTimeout as sleep } from 'node:timers/promises';
import type Dockerode from 'dockerode';
import { InfrastructureError, statusCodeOf } from '../jobs/errors.js';

export interface OutageOptions {
  /** When the engine was last known to answer (ms since epoch). */
  lostAt: number;
  /** How long the engine may stay away before the run fails. */
  limitMs: number;
  intervalMs: number;
  signal?: AbortSignal;
}

/**
 * Polls the container until the engine answers about it again (after a daemon restart, say).
 * Rejects with an infrastructure error when the container is gone or the engine stays away
 * longer than `limitMs`.
 */
export async function awaitEngine(
  container: Dockerode.Container,
  options: OutageOptions,
): Promise<Dockerode.ContainerInspectInfo> {
  let lastError: unknown;
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      return await container.inspect({
        abortSignal: AbortSignal.timeout(Math.max(options.intervalMs, 1_000)),
      });
    } catch (error) {
      if (statusCodeOf(error) === 404) {
        throw new InfrastructureError(
          'running',
          `container ${container.id} is gone after the docker engine came back; the job will be retried`,
        );
      }
      lastError = error;
    }
    const away = Date.now() - options.lostAt;
    if (away >= options.limitMs) {
      throw new InfrastructureError(
        'running',
        `the docker engine has not answered for ${Math.round(away / 1000)} s (last: ${(lastError as Error).message}); check dockerd; the job will be retried`,
        { cause: lastError },
      );
    }
    await sleep(options.intervalMs, undefined, { signal: options.signal });
  }
}

/** Whether the engine keeps containers running while it is down (`live-restore`). */
export async function liveRestoreEnabled(docker: Dockerode): Promise<boolean> {
  const info = (await docker.info()) as { LiveRestoreEnabled?: boolean };
  return info.LiveRestoreEnabled === true;
}
