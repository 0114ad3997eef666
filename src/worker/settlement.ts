import { DelayedError, UnrecoverableError, WaitingError } from 'bullmq';
import { ImageUnavailableError, MountChangedError } from '../jobs/errors.js';
import type { JobResult } from '../jobs/result.js';
import type { RunOutcome } from './run/run.js';

/** How soon a job for another runtime is offered again (to whichever worker takes it next). */
export const REROUTE_DELAY_MS = 1_000;

/** How one take of a job ended: handed back at admission, or a run with its result. */
export type TakeEnd =
  | { rerouted: true }
  | { outcome: Pick<RunOutcome, 'interruptedBy' | 'error'>; result: JobResult };

/**
 * What the processor tells BullMQ, and what it does first. BullMQ reads a thrown DelayedError or
 * WaitingError as "moved, not failed" (no attempt spent) and an UnrecoverableError as "failed,
 * never retried"; a returned value completes the job.
 */
export type Settlement =
  /** Another live worker runs the runtime the job asks for: back to the queue, delayed until `until`. */
  | { kind: 'rerouted'; until: number; error: DelayedError }
  /**
   * The worker shuts down: the container is released (stopped) or left (detach) first, so nobody
   * adopts its exit code, the run goes into the job's history with `note`, and the job back to wait.
   */
  | { kind: 'put-back'; detached: boolean; note: string; error: WaitingError }
  /** Another worker may own the job now: its container is left for it; the run goes into the history. */
  | { kind: 'lost-lock'; note: string; error: Error }
  /**
   * An infrastructure failure: the run goes into the history and the result to its side key
   * (BullMQ may run the job again); `error` is what BullMQ gets, unrecoverable when no retry can help.
   */
  | { kind: 'failed'; error: Error }
  /** A result (Complete, Cancelled, or Failed as data): BullMQ stores it as the return value. */
  | { kind: 'completed'; result: JobResult };

type Rerouted = Extract<Settlement, { kind: 'rerouted' }>;
type LostLock = Extract<Settlement, { kind: 'lost-lock' }>;

/**
 * The answer for a run that no longer owns its job: it saw the lock go (lockRenewalFailed), or
 * its fenced result write found the lock gone or another worker's (`atWrite`). It writes no result.
 */
export function lostLock(atWrite = false): LostLock {
  const note = atWrite
    ? 'lost the job lock before writing its result: another worker may own this job; no result written'
    : 'lost the job lock: another worker may own this job; container left for it to adopt';
  return { kind: 'lost-lock', note, error: new Error(note) };
}

/** The one mapping from how a take ended to BullMQ's answer; pure, so every case has a unit test. */
export function settle(end: Extract<TakeEnd, { rerouted: true }>, now: number): Rerouted;
export function settle(end: Exclude<TakeEnd, { rerouted: true }>, now: number): Exclude<Settlement, Rerouted>;
export function settle(end: TakeEnd, now: number): Settlement;
export function settle(end: TakeEnd, now: number): Settlement {
  if ('rerouted' in end)
    return { kind: 'rerouted', until: now + REROUTE_DELAY_MS, error: new DelayedError() };
  const { outcome, result } = end;
  if (outcome.interruptedBy === 'shutdown' || outcome.interruptedBy === 'detach') {
    const detached = outcome.interruptedBy === 'detach';
    const note = detached
      ? 'worker shut down; container left running for the next worker to adopt'
      : 'worker shut down; container stopped, job put back without spending an attempt';
    return { kind: 'put-back', detached, note, error: new WaitingError() };
  }
  if (outcome.interruptedBy === 'lost-lock') return lostLock();
  if (outcome.error) {
    // No retry can bring an image that is neither on the host nor in the job's tarball.
    if (outcome.error instanceof ImageUnavailableError) {
      return { kind: 'failed', error: new UnrecoverableError(outcome.error.message) };
    }
    // A swapped mount is a job the policy would refuse now: invalid, never retried.
    if (outcome.error instanceof MountChangedError) {
      return { kind: 'failed', error: new UnrecoverableError(outcome.error.message) };
    }
    return { kind: 'failed', error: outcome.error };
  }
  return { kind: 'completed', result };
}
