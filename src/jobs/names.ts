import { join } from 'node:path';
import { ValidationError } from './errors.js';

/**
 * Public names: container labels, container names and log directories. Users script against
 * them (docs/names.md), so every part of Stevedore takes them from here.
 */
export const LABELS = {
  queue: 'stevedore.queue',
  jobId: 'stevedore.job-id',
  attempt: 'stevedore.attempt',
  workerId: 'stevedore.worker-id',
  /**
   * The deployment (Redis, prefix and queue) whose worker made the container: a worker touches
   * only containers of its own deployment, so deployments sharing an engine and a queue name leave
   * each other's alone. Absent on containers made before 0.x (see recovery/ownership.ts).
   */
  deployment: 'stevedore.deployment',
  /** On netns holder containers; its value is the queue of the worker that made the holder. */
  netnsHolder: 'stevedore.netns-holder',
} as const;

/**
 * The only variables Stevedore adds to a job's environment (docs/retries.md): which run this is
 * (1-based, the result's `attempt`) and the job's id. A spec that sets either is refused.
 */
export const JOB_ENV = {
  attempt: 'STEVEDORE_ATTEMPT',
  jobId: 'STEVEDORE_JOB_ID',
} as const;

export interface RunName {
  queue: string;
  jobId: string;
  attempt: number;
}

/** A deployment's id: made once per Redis, prefix and queue (jobs/deployment.ts); 12 lowercase hex digits. */
export const DEPLOYMENT_ID = /^[0-9a-f]{12}$/;

/** The labels of a job's container: how a later worker of the same deployment finds, adopts or removes it. */
export function containerLabels(
  run: RunName & { workerId: string; deployment: string },
): Record<string, string> {
  return {
    [LABELS.queue]: run.queue,
    [LABELS.jobId]: run.jobId,
    [LABELS.attempt]: String(run.attempt),
    [LABELS.workerId]: run.workerId,
    [LABELS.deployment]: run.deployment,
  };
}

/** Label filters (`docker ps --filter label=…`) for a queue's containers, or one job's. */
export function labelFilters(queue: string, jobId?: string): string[] {
  return jobId === undefined
    ? [`${LABELS.queue}=${queue}`]
    : [`${LABELS.queue}=${queue}`, `${LABELS.jobId}=${jobId}`];
}

const hex = (bytes: Buffer, mark: string): string =>
  [...bytes].map((b) => `${mark}${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');

function encodeWith(text: string, keep: RegExp, mark: string): string {
  let out = '';
  for (const char of text) out += keep.test(char) ? char : hex(Buffer.from(char, 'utf8'), mark);
  return out;
}

function decodeWith(text: string, mark: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; ) {
    if (text[i] === mark) {
      bytes.push(Number.parseInt(text.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      bytes.push(text.charCodeAt(i));
      i += 1;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

const PATH_KEEP = /^[A-Za-z0-9._-]$/;

/**
 * One directory name for any text, reversibly: UTF-8 bytes outside [A-Za-z0-9._-] become %XX,
 * and "." and ".." are encoded whole, so `a/b`, `a_b` and `..` get directories of their own.
 */
export function encodePathSegment(text: string): string {
  if (text === '.' || text === '..') return hex(Buffer.from(text), '%');
  return encodeWith(text, PATH_KEEP, '%');
}

export function decodePathSegment(segment: string): string {
  return decodeWith(segment, '%');
}

/** Where one attempt's stdout, stderr and events.log are written: `<dir>/<queue>/<job id>/<attempt>/`. */
export function logDirOf(root: string, run: RunName): string {
  return join(root, encodePathSegment(run.queue), encodePathSegment(run.jobId), String(run.attempt));
}

// Docker names match [a-zA-Z0-9][a-zA-Z0-9_.-]*: '%' is not allowed, so '_' is the escape mark.
const NAME_KEEP = /^[A-Za-z0-9.-]$/;
const QUEUE_NAME_KEEP = /^[A-Za-z0-9.]$/;

/**
 * The container of one run: `stevedore-<queue>-<job id>-<attempt>-<n>.<deployment>` (n = BullMQ's
 * count of starts). Bytes outside the name alphabet, and '_', become _XX; in the queue '-' does
 * too, so the first '-' after it ends it and two different runs never share a name. The
 * deployment's id ends it, so two deployments running the same job id on one engine do not
 * collide on the name (a 409 on create).
 */
export function containerName(run: RunName & { started: number; deployment: string }): string {
  const queue = encodeWith(run.queue, QUEUE_NAME_KEEP, '_');
  const jobId = encodeWith(run.jobId, NAME_KEEP, '_');
  return `stevedore-${queue}-${jobId}-${run.attempt}-${run.started}.${run.deployment}`;
}

/**
 * The queue, job id, attempt, start count and deployment a container name was made from (the
 * deployment is null in names made before it was part of them); null if it is none of ours.
 */
export function parseContainerName(
  name: string,
): (RunName & { started: number; deployment: string | null }) | null {
  const match = /^\/?stevedore-([A-Za-z0-9._]+)-(.+)-(\d+)-(\d+)(?:\.([0-9a-f]{12}))?$/.exec(name);
  if (!match) return null;
  const [, queue, jobId, attempt, started, deployment] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
    string | undefined,
  ];
  return {
    queue: decodeWith(queue, '_'),
    jobId: decodeWith(jobId, '_'),
    attempt: Number(attempt),
    started: Number(started),
    deployment: deployment ?? null,
  };
}

/** Longest job id BullMQ keys and Stevedore's log directories are sized for. */
const MAX_JOB_ID_CHARS = 200;
/** NAME_MAX of Linux file systems: the encoded id is one directory name. */
const MAX_SEGMENT_BYTES = 255;

/**
 * What is wrong with a job id, [] when nothing. `custom` ids (chosen by the submitter) may not be
 * all digits: BullMQ's own ids are its counter, and a custom one would collide with them. A job
 * taken from the queue may carry a counter id (canonical digits, as BullMQ writes them).
 */
export function jobIdProblems(id: string, origin: 'custom' | 'queued' = 'custom'): string[] {
  const problems: string[] = [];
  if (id === '') problems.push('must not be empty');
  if (id.includes(':')) problems.push('must not contain ":"');
  if (/^\d+$/.test(id) && (origin === 'custom' || !/^[1-9]\d*$/.test(id)))
    problems.push(
      origin === 'custom' ? 'must not be all digits' : 'must not be all digits unless BullMQ made it',
    );
  if (id.length > MAX_JOB_ID_CHARS) problems.push(`must be at most ${MAX_JOB_ID_CHARS} characters`);
  else if (Buffer.byteLength(encodePathSegment(id)) > MAX_SEGMENT_BYTES)
    problems.push(`is too long once encoded as a directory name (at most ${MAX_SEGMENT_BYTES} bytes)`);
  return problems;
}

/** Throws ValidationError naming every problem of a custom job id. */
export function checkJobId(id: string): void {
  const problems = jobIdProblems(id);
  if (problems.length > 0) throw new ValidationError(`jobId ${JSON.stringify(id)} ${problems.join(', ')}`);
}
