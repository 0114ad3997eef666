import { z } from 'zod';
import type { Phase } from './errors.js';

/** The longest any one timeout may be: 30 days, as for `maxRunTimeSeconds`. */
export const MAX_TIMEOUT_SECONDS = 30 * 24 * 3600;

/**
 * A timeout for each phase of a job. Each one that fires ends the attempt with reason `timeout`,
 * naming its phase; the retry rules decide whether it runs again (by default it does not).
 */
export const TIMEOUT_PHASES = {
  /** From submit to admission: the job ends Cancelled in phase `queued`, no container made. */
  queueSeconds: 'queued',
  /** Getting the image: pull, tarball load or conversion. */
  imageSeconds: 'loading-image',
  /** Creating and starting the container. */
  startSeconds: 'starting',
  /** The command's run (`maxRunTimeSeconds` is its old name). */
  runSeconds: 'running',
  /** A run that writes nothing on stdout or stderr for this long. */
  noOutputSeconds: 'running',
} as const satisfies Record<string, Phase | 'queued'>;

export type TimeoutName = keyof typeof TIMEOUT_PHASES;

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
