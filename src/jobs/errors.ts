/** Where in a run something went wrong; matches the run state machine's phases. */
export type Phase =
  | 'validating'
  | 'admitted'
  | 'loading-image'
  | 'creating'
  | 'starting'
  | 'running'
  | 'stopping'
  | 'finalizing'
  | 'exec'
  | 'closing';

/**
 * A failure in one phase of a run. The message starts with the phase so that a user reading
 * one line knows where it happened: `loading-image: <the engine's own message>`.
 */
export class PhaseError extends Error {
  readonly phase: Phase;

  constructor(phase: Phase, message: string, options?: { cause?: unknown }) {
    super(`${phase}: ${message}`, options);
    this.name = 'PhaseError';
    this.phase = phase;
  }
}

/** The container runtime stopped answering or refused an operation: retrying may help. */
export class InfrastructureError extends PhaseError {
  constructor(phase: Phase, message: string, options?: { cause?: unknown }) {
    super(phase, message, options);
    this.name = 'InfrastructureError';
  }
}

/**
 * The image cannot be had on this host, and no retry can change that (not present, no tarball
 * that holds it). The job fails at once with reason `image`, never retried.
 */
export class ImageUnavailableError extends PhaseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('loading-image', message, options);
    this.name = 'ImageUnavailableError';
  }
}

/** The program to run does not exist in the image: exit code 127, as a shell would say. */
export class CommandNotFoundError extends PhaseError {
  readonly exitCode = 127;

  constructor(message: string, options?: { cause?: unknown }) {
    super('starting', message, options);
    this.name = 'CommandNotFoundError';
  }
}

/**
 * A bind mount's host path names another file than the one admission checked (a link swapped in
 * since): the job fails with reason `invalid`, never retried, and its container never runs on.
 */
export class MountChangedError extends PhaseError {
  constructor(phase: Phase, message: string) {
    super(phase, message);
    this.name = 'MountChangedError';
  }
}

/** One problem found in a job spec: where (a dotted path) and why. */
export interface SpecIssue {
  path: string;
  message: string;
}

/** A job spec that can never run; lists every problem at once. Never retried. */
export class InvalidSpecError extends Error {
  readonly issues: SpecIssue[];

  constructor(issues: SpecIssue[]) {
    const lines = issues.map((i) => `  - ${i.path || '(spec)'}: ${i.message}`);
    super(
      `invalid job spec (${issues.length} problem${issues.length === 1 ? '' : 's'}):\n${lines.join('\n')}`,
    );
    this.name = 'InvalidSpecError';
    this.issues = issues;
  }
}

/** The run was cancelled (by a user, a timeout or a lost lock) before it could finish. */
export class CancelledError extends Error {
  readonly reason: string;

  constructor(reason: string) {
    super(`cancelled: ${reason}`);
    this.name = 'CancelledError';
    this.reason = reason;
  }
}

/** The container runtime a worker was told to use cannot be used on this host; the worker does not start. */
export class RuntimeUnavailableError extends Error {
  readonly runtime: string;

  constructor(runtime: string, message: string, options?: { cause?: unknown }) {
    super(`runtime ${runtime} is not available: ${message}`, options);
    this.name = 'RuntimeUnavailableError';
    this.runtime = runtime;
  }
}

/** Bad input to the client or the CLI (not a job spec). */
export class ValidationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValidationError';
  }
}

/** No job with this id exists (never submitted, or its result has expired). */
export class UnknownJobError extends Error {
  readonly jobId: string;

  constructor(jobId: string) {
    super(
      `unknown job ${JSON.stringify(jobId)}: no such job in this queue (wrong id or queue, or its result expired)`,
    );
    this.name = 'UnknownJobError';
    this.jobId = jobId;
  }
}

/**
 * A write the master took but fewer replicas than asked acknowledged in time (Redis `WAIT`): the
 * write exists on the master and is lost only if the master fails over before a replica has it.
 */
export class ReplicationError extends Error {
  constructor(
    message: string,
    readonly acknowledged: number,
    readonly wanted: number,
  ) {
    super(message);
    this.name = 'ReplicationError';
  }
}

/** Turns anything thrown into an Error, keeping the original as `cause`. */
export function coerceError(value: unknown): Error {
  if (value instanceof Error) return value;
  return new Error(typeof value === 'string' ? value : JSON.stringify(value), { cause: value });
}

/** The HTTP status dockerode attached to an engine error, if any. */
export function statusCodeOf(error: unknown): number | undefined {
  if (typeof error === 'object' && error !== null && 'statusCode' in error) {
    const code = (error as { statusCode: unknown }).statusCode;
    return typeof code === 'number' ? code : undefined;
  }
  return undefined;
}
