import { createHash } from 'node:crypto';
import type { JobResult } from '../src/jobs/result.js';
import type { JobSpecInput } from '../src/jobs/spec.js';

/** The kinds of job the load test mixes, each with the one result it must end in. */
export const KINDS = ['trivial', 'output', 'exit', 'cancel', 'timeout', 'invalid'] as const;
export type Kind = (typeof KINDS)[number];
export type Mix = Record<Kind, number>;
/** Half the jobs go through Stevedore's client, half through plain BullMQ `Queue.add`. */
export type Via = 'client' | 'bullmq';

/** Default weights: mostly trivial jobs, as a busy queue sees them, and every other kind present. */
export const DEFAULT_MIX: Mix = { trivial: 10, output: 2, exit: 2, cancel: 1, timeout: 1, invalid: 1 };
/** The 1 MB jobs' stdout size: enough to cross the live-output chunking and the log file path. */
export const OUTPUT_BYTES = 1024 * 1024;
/** The exit code of the non-zero jobs: distinct from 1 (a shell error) and from 128+N (signals). */
export const EXIT_CODE = 7;
/** How long cancel and timeout jobs would run if nothing stopped them: far past any run's length. */
export const LONG_SLEEP_S = 300;
/** The timeout jobs' limit: the shortest the spec allows, so they finish quickly. */
export const TIMEOUT_S = 1;

export interface PlannedJob {
  id: string;
  kind: Kind;
  via: Via;
}

/** `trivial=10,output=2,…` → weights; every kind not named is 0; names the bad entry. */
export function parseMix(text: string): Mix {
  const mix: Mix = { trivial: 0, output: 0, exit: 0, cancel: 0, timeout: 0, invalid: 0 };
  for (const entry of text.split(',').filter((e) => e.trim() !== '')) {
    const [name, weight] = entry.split('=').map((s) => s.trim());
    if (!KINDS.includes(name as Kind)) {
      throw new Error(`--mix: unknown kind ${JSON.stringify(name)} (expected one of ${KINDS.join(', ')})`);
    }
    const value = Number(weight);
    if (!Number.isInteger(value) || value < 0) {
      throw new Error(`--mix: ${name}=${weight ?? ''} is not a non-negative integer weight`);
    }
    mix[name as Kind] = value;
  }
  if (KINDS.every((k) => mix[k] === 0)) throw new Error('--mix: every weight is 0');
  return mix;
}

/** `count` jobs in the mix's proportions, interleaved, alternating client and BullMQ. */
export function planJobs(count: number, mix: Mix, runId: string): PlannedJob[] {
  const cycle = KINDS.flatMap((kind) => Array.from({ length: mix[kind] }, () => kind));
  return Array.from({ length: count }, (_, i) => ({
    // No `:` and not all digits (BullMQ's rules for custom ids).
    id: `load-${runId}-${i}`,
    kind: cycle[i % cycle.length] as Kind,
    via: i % 2 === 0 ? 'client' : 'bullmq',
  }));
}

/** The 1 MB job's stdout: its own id repeated, so a mixed-up file shows. */
export function expectedOutput(id: string): Buffer {
  const line = Buffer.from(`${id}\n`);
  return Buffer.concat(Array.from({ length: Math.ceil(OUTPUT_BYTES / line.length) }, () => line)).subarray(
    0,
    OUTPUT_BYTES,
  );
}

export const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** The spec of a job of this kind; invalid ones break the schema (an empty command). */
export function specFor(job: PlannedJob, image: string): JobSpecInput {
  const base = { image, imagePullPolicy: 'never' as const };
  switch (job.kind) {
    case 'trivial':
      return { ...base, command: ['echo', 'ok'] };
    case 'output':
      return { ...base, command: ['sh', '-c', `yes ${job.id} | head -c ${OUTPUT_BYTES}`] };
    case 'exit':
      return { ...base, command: ['sh', '-c', `exit ${EXIT_CODE}`] };
    case 'cancel':
      return { ...base, command: ['sleep', String(LONG_SLEEP_S)] };
    case 'timeout':
      return { ...base, command: ['sleep', String(LONG_SLEEP_S)], maxRunTimeSeconds: TIMEOUT_S };
    case 'invalid':
      return { ...base, command: [] };
  }
}

/** What each kind must end in; `output` also has its stdout hash checked by the caller. */
const EXPECTED: Record<Kind, Partial<JobResult>> = {
  trivial: { state: 'Complete', reason: 'exited', exitCode: 0 },
  output: { state: 'Complete', reason: 'exited', exitCode: 0 },
  exit: { state: 'Complete', reason: 'exited', exitCode: EXIT_CODE },
  cancel: { state: 'Cancelled', reason: 'cancelled' },
  timeout: { state: 'Cancelled', reason: 'timeout' },
  invalid: { state: 'Failed', reason: 'invalid' },
};

/**
 * Why a result is wrong for its kind, or null when it is right. `outputHash` is the sha256 of the
 * stdout file the result names, read by the caller (on the host: the log dir is the same path).
 */
export function checkResult(job: PlannedJob, result: JobResult, outputHash?: string | null): string | null {
  const want = EXPECTED[job.kind];
  for (const [field, value] of Object.entries(want) as [keyof JobResult, unknown][]) {
    if (result[field] !== value) {
      return `${job.kind} job ${job.id}: ${field} is ${JSON.stringify(result[field])}, expected ${JSON.stringify(value)}`;
    }
  }
  if (result.jobId !== job.id) return `${job.kind} job ${job.id}: the result is job ${result.jobId}'s`;
  if (job.kind === 'trivial' && result.stdout.tail !== 'ok\n') {
    return `trivial job ${job.id}: stdout tail is ${JSON.stringify(result.stdout.tail)}, expected "ok\\n"`;
  }
  if (job.kind === 'output') {
    if (result.stdout.bytes !== OUTPUT_BYTES) {
      return `output job ${job.id}: stdout.bytes is ${result.stdout.bytes}, expected ${OUTPUT_BYTES}`;
    }
    const want = sha256(expectedOutput(job.id));
    if (outputHash !== want) {
      return `output job ${job.id}: the stdout file's sha256 is ${outputHash ?? 'missing'}, expected ${want}`;
    }
  }
  return null;
}

/** How many times the engine may have started a container for a job of this kind and be right. */
export function allowedStarts(kind: Kind): { min: number; max: number } {
  if (kind === 'invalid') return { min: 0, max: 0 };
  // A cancel may land before the container starts (Cancelled while waiting or creating), and a
  // timeout counts from admission, so under load it may be over before the start (never started).
  if (kind === 'cancel' || kind === 'timeout') return { min: 0, max: 1 };
  return { min: 1, max: 1 };
}
