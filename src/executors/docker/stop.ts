import type Dockerode from 'dockerode';
import type { Logger } from 'pino';
import type { StopOutcome } from '../executor.js';
import { isAlreadyInState, isGone, wrapEngineError } from './errors.js';

/**
 * SIGTERM, then SIGKILL once `graceMs` passed without `exited` settling; SIGKILL at once when
 * graceMs is 0. A container that is no longer running is left alone, and the answer says so: the
 * engine refuses the first signal when the container already exited by itself.
 */
export async function stopContainer(
  container: Dockerode.Container,
  exited: Promise<unknown>,
  graceMs: number,
  log: Logger,
): Promise<StopOutcome> {
  if (graceMs > 0) {
    if (!(await sendSignal(container, 'SIGTERM', log))) return { signalled: false };
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([
      exited.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (inTime) return { signalled: true };
    // The SIGTERM reached it; whether the SIGKILL still finds it running changes nothing.
    await sendSignal(container, 'SIGKILL', log);
    return { signalled: true };
  }
  return { signalled: await sendSignal(container, 'SIGKILL', log) };
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
