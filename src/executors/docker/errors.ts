import {
  CommandNotFoundError,
  coerceError,
  InfrastructureError,
  PhaseError,
  statusCodeOf,
} from '../../jobs/errors.js';
import type { ExecutorSpec } from '../executor.js';

/** 404: the container (or image) does not exist. */
export function isGone(error: unknown): boolean {
  return statusCodeOf(error) === 404;
}

/**
 * Podman's compatible API answers a call the container's state forbids (kill or exec on an
 * exited one) with 500 and this `cause` (libpod define.ErrCtrStateInvalid), where Docker says 409.
 */
const PODMAN_STATE_IMPROPER = 'container state improper';

/** 304: already stopped/started; 409 (or Podman's state error): not running, or removal already in progress. */
export function isAlreadyInState(error: unknown): boolean {
  const code = statusCodeOf(error);
  if (code === 304 || code === 409) return true;
  const body = (error as { json?: { cause?: unknown } } | undefined)?.json;
  return code === 500 && body?.cause === PODMAN_STATE_IMPROPER;
}

/** The OCI runtime could not find the command (at start; on Podman already when attach prepares the container). */
export function isCommandNotFound(error: unknown): boolean {
  return /executable file not found|no such file or directory/i.test(coerceError(error).message);
}

/** The engine's message without dockerode's "(HTTP code 500) server error - " prefix. */
export function cleanEngineMessage(message: string): string {
  return message.replace(/^\(HTTP code \d+\)[^-]*- /, '').trim();
}

/** An engine error as a phase error (4xx: about this container or spec) or an infrastructure error. */
export function wrapEngineError(
  phase: 'creating' | 'starting' | 'running' | 'stopping' | 'finalizing' | 'closing',
  what: string,
  error: unknown,
): Error {
  const message = cleanEngineMessage(coerceError(error).message);
  const code = statusCodeOf(error);
  // 4xx from the engine is about this container or spec; anything else means the engine is in trouble.
  if (code !== undefined && code >= 400 && code < 500) {
    return new PhaseError(phase, `${what}: ${message}`, { cause: error });
  }
  return new InfrastructureError(phase, `${what}: ${message}`, { cause: error });
}

/** Why a container did not start: its command is not in the image (never worth a retry), or the engine's error. */
export function startError(spec: Pick<ExecutorSpec, 'image' | 'command'>, error: unknown): Error {
  if (!isCommandNotFound(error)) return wrapEngineError('starting', 'cannot start the container', error);
  return new CommandNotFoundError(
    `command not found in image ${spec.image}: ${JSON.stringify(spec.command[0])} (engine said: ${cleanEngineMessage(coerceError(error).message)})`,
    { cause: error },
  );
}
