import type Dockerode from 'dockerode';
import type { Logger } from 'pino';
import { isAlreadyInState, isGone, wrapEngineError } from './errors.js';

/**
 * SIGTERM, then SIGKILL once `graceMs` passed without `exited` settling; SIGKILL at once when
 * graceMs is 0. A container that is no longer running is left alone.
 */
export async function stopContainer(
  container: Dockerode.Container,
  exited: Promise<unknown>,
  graceMs: number,
  log: Logger,
): Promise<void> {
  if (graceMs > 0) {
    if (!(await sendSignal(container, 'SIGTERM', log))) return;
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([
      exited.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (inTime) return;
  }
  await sendSignal(container, 'SIGKILL', log);
}

/** Sends a signal; false when the container is no longer running. */
async function sendSignal(container: Dockerode.Container, signal: string, log: Logger): Promise<boolean> {
  try {
    await container.kill({ signal });
    log.debug({ containerId: container.id, signal }, 'signal sent');
    return true;
  } catch (error) {
    if (isGone(error) || isAlreadyInState(error)) return false;
    throw wrapEngineError('stopping', `cannot send ${signal}`, error);
  }
}
