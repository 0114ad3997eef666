import type Dockerode from 'dockerode';
import type { Logger } from 'pino';
import type { StopOutcome } from '../executor.js';
import { isAlreadyInState, isGone, wrapEngineError } from './errors.js';

/** How long a stop without grace waits for the SIGKILL's exit, to read when it happened (it comes in milliseconds). */
const KILL_EXIT_WAIT_MS = 2_000;

/**
 * SIGTERM, then SIGKILL once `graceMs` passed without `exited` settling; SIGKILL at once when
 * graceMs is 0. A container that is no longer running is left alone, and the answer says no
 * signal reached it: the engine refuses the signal once it knows of the exit, and for the few
 * milliseconds before it does (the kill "succeeds" on a finished process) the exit's own time,
 * earlier than the signal was sent, says the same.
 */
export async function stopContainer(
  container: Dockerode.Container,
  exited: Promise<unknown>,
  graceMs: number,
  log: Logger,
): Promise<StopOutcome> {
  const sentAt = Date.now();
  if (!(await sendSignal(container, graceMs > 0 ? 'SIGTERM' : 'SIGKILL', log))) return { signalled: false };
  if (!(await settlesWithin(exited, graceMs > 0 ? graceMs : KILL_EXIT_WAIT_MS))) {
    // Still running after the grace: the SIGTERM reached it, and now the SIGKILL ends it.
    if (graceMs > 0) await sendSignal(container, 'SIGKILL', log);
    return { signalled: true };
  }
  return { signalled: !(await exitedBefore(container, sentAt, log)) };
}

/** Whether the container's process ended before `sentAt` (ms since epoch, read before the signal was sent). */
export function endedBefore(finishedAt: string | undefined, sentAt: number): boolean {
  const ended = finishedAt === undefined ? Number.NaN : Date.parse(finishedAt);
  // The engine's zero time (0001-01-01) means it never ended; the parse keeps only whole milliseconds,
  // so an exit in the same millisecond as the send counts as after it (signalled: the old answer).
  return Number.isFinite(ended) && ended > 0 && ended < sentAt;
}

async function exitedBefore(container: Dockerode.Container, sentAt: number, log: Logger): Promise<boolean> {
  try {
    const info = await container.inspect();
    return endedBefore(info.State.FinishedAt, sentAt);
  } catch (error) {
    // Unknown: say it was signalled, so the run counts as stopped (what it was before stop() could tell).
    log.debug({ containerId: container.id, err: error }, 'cannot read when the stopped container ended');
    return false;
  }
}

async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const inTime = await Promise.race([
    promise.then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]);
  clearTimeout(timer);
  return inTime;
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
