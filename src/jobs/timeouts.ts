import { z } from 'zod';
import type { Phase } from './errors.js';

/** The longest any one timeout may be: 30 days, as for `maxRunTimeSeconds`. */
export const MAX_TIMEOUT_SECONDS = 30 * 24 * 3600;

/**
 * A timeout for each phase of a job, and the phases each one guards. Each one that fires ends
 * the attempt with reason `timeout` and the result's `timeout` names it and the phase the run was
 * in; the retry rules decide whether it runs again (by default it does not).
 */
export const TIMEOUT_PHASES = {
  /** From submit to admission: the job ends Cancelled in phase `queued`, no container made. */
  queueSeconds: ['queued'],
  /** Getting the image: pull, tarball load or conversion. */
  imageSeconds: ['loading-image'],
  /** Creating and starting the container. */
  startSeconds: ['creating', 'starting'],
  /**
   * The whole attempt, from admission to the exit (`maxRunTimeSeconds` is its old name, and kept
   * its meaning): image, create and start included, so it bounds everything the others do not.
   */
  runSeconds: ['admitted', 'loading-image', 'creating', 'starting', 'running'],
  /** A run that writes nothing on stdout or stderr for this long. */
  noOutputSeconds: ['running'],
} as const satisfies Record<string, readonly (Phase | 'queued')[]>;

export type TimeoutName = keyof typeof TIMEOUT_PHASES;
export const TIMEOUT_NAMES = Object.keys(TIMEOUT_PHASES) as TimeoutName[];

const seconds = z
  .number()
  .positive('must be greater than 0')
  .max(MAX_TIMEOUT_SECONDS, `must be at most ${MAX_TIMEOUT_SECONDS} (30 days)`);

export const timeoutsSchema = z
  .object({
    queueSeconds: seconds.optional(),
    imageSeconds: seconds.optional(),
    startSeconds: seconds.optional(),
    runSeconds: seconds.optional(),
    noOutputSeconds: seconds.optional(),
  })
  .strict();

export type Timeouts = z.output<typeof timeoutsSchema>;

/** Which timeout ended a run, and where: the result's `timeout` field. */
export interface TimeoutRecord {
  /** The spec field that set it: `timeouts.noOutputSeconds`, or `maxRunTimeSeconds` when the job used that name. */
  field: string;
  name: TimeoutName;
  /** The phase the run was in when it fired (`queued` for queueSeconds). */
  phase: Phase | 'queued';
  seconds: number;
}

/**
 * The run timeout of a spec that may name it twice (`timeouts.runSeconds` and its old name
 * `maxRunTimeSeconds`): one value, or a message saying the two disagree.
 */
export function runTimeout(
  timeouts: Timeouts | undefined,
  maxRunTimeSeconds: number | undefined,
): { seconds: number | undefined } | { problem: string } {
  const named = timeouts?.runSeconds;
  if (named !== undefined && maxRunTimeSeconds !== undefined && named !== maxRunTimeSeconds) {
    return {
      problem: `timeouts.runSeconds (${named}) and maxRunTimeSeconds (${maxRunTimeSeconds}) disagree: give one of them`,
    };
  }
  return { seconds: named ?? maxRunTimeSeconds };
}

/** A spec's timeouts with the run timeout under its one name (a valid spec never disagrees). */
export function timeoutsOf(spec: { timeouts?: Timeouts; maxRunTimeSeconds?: number }): Timeouts {
  const run = runTimeout(spec.timeouts, spec.maxRunTimeSeconds);
  const runSeconds = 'seconds' in run ? run.seconds : spec.timeouts?.runSeconds;
  return { ...spec.timeouts, ...(runSeconds === undefined ? {} : { runSeconds }) };
}

/** The spec field a timeout came from, as the job wrote it. */
export function timeoutField(
  name: TimeoutName,
  spec: { timeouts?: Timeouts; maxRunTimeSeconds?: number },
): string {
  if (
    name === 'runSeconds' &&
    spec.timeouts?.runSeconds === undefined &&
    spec.maxRunTimeSeconds !== undefined
  )
    return 'maxRunTimeSeconds';
  return `timeouts.${name}`;
}

const WHAT_RAN_OUT: Record<TimeoutName, string> = {
  queueSeconds: 'the job waited in the queue',
  imageSeconds: 'getting the image took',
  startSeconds: 'creating and starting the container took',
  runSeconds: 'the run took',
  noOutputSeconds: 'the job wrote nothing on stdout or stderr for',
};

/** The result's `error.message` for a timeout: what ran out, its field and what to do. */
export function timeoutMessage(record: TimeoutRecord): string {
  return `${record.phase}: ${WHAT_RAN_OUT[record.name]} ${record.seconds} s, the limit of ${record.field}; raise it (within the worker policy's timeouts.${record.name}.max) if the job needs longer`;
}
