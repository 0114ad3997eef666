import { InfrastructureError, PhaseError, statusCodeOf } from '../../jobs/errors.js';

/** 404: the container (or image) does not exist. */
export function isGone(error: unknown): boolean {
  return statusCodeOf(error) === 404;
}

/** 304: already stopped/started; 409: not running, or removal already in progress. */
export function isAlreadyInState(error: unknown): boolean {
  const code = statusCodeOf(error);
  return code === 304 || code === 409;
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
  const message = cleanEngineMessage((error as Error).message ?? String(error));
  const code = statusCodeOf(error);
  // 4xx from the engine is about this container or spec; anything else means the engine is in trouble.
  if (code !== undefined && code >= 400 && code < 500) {
    return new PhaseError(phase, `${what}: ${message}`, { cause: error });
  }
  return new InfrastructureError(phase, `${what}: ${message}`, { cause: error });
}
