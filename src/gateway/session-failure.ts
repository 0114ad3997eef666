import type { FramedSocket } from '../jobs/gateway/framed-socket.js';
import { FRAME } from '../jobs/gateway/frames.js';
import type { Exit, Refusal } from '../jobs/gateway/handshake.js';

/** The steps of a session on the worker, in order: a failure names the one it came in. */
export type SessionPhase =
  | 'reading the hello'
  | 'authenticating the request'
  | 'auditing the start'
  | 'running the exec'
  | 'forwarding'
  | 'auditing the end';

/** Where a session is, for the message that says what failed. */
export interface SessionState {
  phase: SessionPhase;
  /** `ready` went to the client: an exec's end is an exit frame from here on, never a refusal. */
  opened: boolean;
}

/** The worker's own error is cut to this in what the client is told: one frame, one line. */
const MAX_ERROR_CHARS = 2_000;

/** What a client learns when the worker failed at its session: what failed, in which phase, what came of it, what to do. */
export function failureMessage(state: SessionState, error: unknown, raw = false): string {
  const text = error instanceof Error ? error.message : String(error);
  const what = text.length > MAX_ERROR_CHARS ? `${text.slice(0, MAX_ERROR_CHARS)}…` : text;
  const outcome = raw
    ? 'the forwarded connection was cut'
    : !state.opened
      ? 'the session did not open'
      : state.phase === 'auditing the start'
        ? 'the command was not run'
        : 'the command may still be running in the job, and its exit code is lost';
  return `the worker failed while ${state.phase} (${what}): ${outcome}; try again, and if it fails again, the worker's log has the error ("gateway: session failed")`;
}

/**
 * Tells the client that the worker failed at its session, the one way still open to it: a
 * refusal before `ready`, an exit frame once an exec is open. A forward's raw bytes leave no room
 * for words, so its connection is cut; a session whose exit frame went out has nothing left to
 * hear. Returns the message, for the audit and the log.
 */
export function tellFailure(connection: FramedSocket, state: SessionState, error: unknown): string {
  const message = failureMessage(state, error, connection.isRaw);
  if (connection.isClosed || state.phase === 'auditing the end') return message;
  if (connection.isRaw) {
    connection.close(null);
    return message;
  }
  if (state.opened) {
    const exit: Exit = { exitCode: null, reason: 'error', message };
    connection.sendJson(FRAME.exit, exit);
  } else {
    const refusal: Refusal = { code: 'error', message };
    connection.sendJson(FRAME.refused, refusal);
  }
  connection.end();
  return message;
}
