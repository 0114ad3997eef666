import { setTimeout as sleep } from 'node:timers/promises';
import type Dockerode from 'dockerode';
import type { Logger } from 'pino';
import { coerceError, InfrastructureError, statusCodeOf } from '../../jobs/errors.js';

/** Watchdog inspects that must see the container exited before we stop waiting for wait(). */
const EXITED_CONFIRMATIONS = 3;

export interface WatchdogOptions {
  intervalMs: number;
  /** How long the daemon may fail every inspect before the run fails. */
  outageMs: number;
  stop: AbortSignal;
  log: Logger;
}

/**
 * The watchdog beside wait(): rejects when the daemon has not answered an inspect for
 * `outageMs`, or the container disappeared. Resolves with the exit code if inspect sees the
 * container exited while the wait request has still not answered (a lost HTTP response must not
 * hang the job). Otherwise never settles.
 */
export async function watchContainer(container: Dockerode.Container, o: WatchdogOptions): Promise<number> {
  let failures = 0;
  let failingSince = 0;
  let exitedSeen = 0;
  while (!o.stop.aborted) {
    await sleep(o.intervalMs, undefined, { signal: o.stop }).catch(() => undefined);
    if (o.stop.aborted) break;
    try {
      const info = await container.inspect({ abortSignal: AbortSignal.timeout(o.intervalMs) });
      failures = 0;
      exitedSeen = info.State.Running ? 0 : exitedSeen + 1;
      if (exitedSeen >= EXITED_CONFIRMATIONS) {
        o.log.warn({ containerId: container.id }, 'container exited but wait never answered; using inspect');
        return info.State.ExitCode;
      }
    } catch (error) {
      if (statusCodeOf(error) === 404) {
        throw new InfrastructureError(
          'running',
          'the container disappeared while running (removed by someone else?)',
        );
      }
      if (failures === 0) failingSince = Date.now();
      failures += 1;
      o.log.warn({ containerId: container.id, failures, err: error }, 'docker daemon did not answer');
      const away = Date.now() - failingSince;
      if (away >= o.outageMs) {
        throw new InfrastructureError(
          'running',
          `docker daemon stopped answering (${failures} inspects failed over ${(away / 1000).toFixed(1)} s, last: ${coerceError(error).message}); check dockerd`,
          { cause: error },
        );
      }
    }
  }
  return new Promise<number>(() => undefined);
}

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
          `container ${container.id} is gone after the docker engine came back; the job is retried while attempts remain`,
        );
      }
      lastError = error;
    }
    const away = Date.now() - options.lostAt;
    if (away >= options.limitMs) {
      throw new InfrastructureError(
        'running',
        `the docker engine has not answered for ${Math.round(away / 1000)} s (last: ${coerceError(lastError).message}); check dockerd; the job is retried while attempts remain`,
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
