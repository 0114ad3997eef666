import type { JobProgress, PullProgress } from './progress.js';
import type { WorkerPresence } from './workers.js';

export type WaitingReason =
  | 'queued'
  | 'no-worker'
  | 'workers-unavailable'
  | 'workers-busy'
  | 'delayed'
  | 'pulling'
  | 'backoff';

/** Why a job that is not running waits: computed when read, from the queue's state (whyWaiting). */
export interface Waiting {
  reason: WaitingReason;
  /** One line for people, e.g. "queued behind 12 jobs; 3 workers, all 12 slots busy". */
  message: string;
  /** ISO time it has waited since (for this reason, as far as Redis tells). */
  since?: string;
  /** Jobs a worker takes before this one (queued, no-worker, workers-busy). */
  ahead?: number;
  /** delayed / backoff: ISO time it becomes ready. */
  until?: string;
  workers?: { seen: number; busySlots: number; slots: number };
  /** pulling: bytes and layers so far. */
  pull?: PullProgress;
  /** backoff: the infrastructure failure being retried, first line only. */
  lastError?: string;
}

/** A job's place in BullMQ 6 (its getState names, plus 'paused' is the meta flag, not a state). */
export type QueueState =
  | 'waiting'
  | 'prioritized'
  | 'delayed'
  | 'active'
  | 'completed'
  | 'failed'
  | 'waiting-children'
  | 'unknown';

/** What whyWaiting needs, read from Redis in one round trip (readStatus). */
export interface WaitingFacts {
  now: number;
  state: QueueState;
  /** The queue is paused (`Queue.pause()`): no worker takes anything. */
  paused: boolean;
  /** Unix ms: when the job was added (BullMQ `timestamp`). */
  enqueuedAt: number;
  /** Unix ms the job was added with a delay of (BullMQ `delay`; after a backoff, the backoff). */
  delayMs: number;
  /** delayed: Unix ms it becomes ready (from BullMQ's delayed set). */
  readyAt?: number;
  attemptsMade: number;
  /**
   * The run the job waits for (runNumber: from its history, as the worker counts); absent:
   * `attemptsMade + 1`. BullMQ's own `attempts` option is no count of runs: the retry rules decide.
   */
  run?: number;
  failedReason?: string;
  /** waiting / prioritized: jobs a worker takes before this one. */
  ahead?: number;
  /** Live workers of the queue (listWorkers). */
  workers: WorkerPresence[];
  /** ISO time any worker of the queue was last seen, live or not. */
  newestSeenAt?: string;
  /** The staleness limit the worker list was read with. */
  staleMs: number;
  progress: JobProgress | null;
}

/** Longest error kept in `lastError`: a line, not a stack trace. */
const LAST_ERROR_CHARS = 300;

/** Why the job waits, or null when it does not (running, finished, or a state that is not ours). */
export function whyWaiting(f: WaitingFacts): Waiting | null {
  const workers = workerCounts(f.workers);
  switch (f.state) {
    case 'active':
      return pulling(f, workers);
    case 'delayed':
      return delayed(f, workers);
    case 'waiting':
    case 'prioritized':
      return queued(f, workers);
    default:
      return null;
  }
}

type Counts = NonNullable<Waiting['workers']>;

/** Slots of the workers that take jobs now; one that does not (engine away, paused) has none to offer. */
function workerCounts(workers: WorkerPresence[]): Counts {
  let busySlots = 0;
  let slots = 0;
  for (const w of workers) {
    if (w.notTaking !== undefined) continue;
    slots += w.capacity;
    busySlots += Math.min(w.running.length, w.capacity);
  }
  return { seen: workers.length, busySlots, slots };
}

/** A taken job waits only while its image loads; any later phase is running, not waiting. */
function pulling(f: WaitingFacts, workers: Counts): Waiting | null {
  const p = f.progress;
  if (p?.phase !== 'loading-image') return null;
  const since = p.history.findLast((h) => h.phase === 'loading-image')?.at ?? p.at;
  const pull = p.pull;
  const message = pull
    ? `pulling image ${pull.image}: ${bytes(pull.bytes)} of ${bytes(pull.totalBytes)} so far, ${pull.layersDone} of ${pull.layers} layers`
    : 'loading the image';
  return { reason: 'pulling', message, since, workers, ...(pull ? { pull } : {}) };
}

function delayed(f: WaitingFacts, workers: Counts): Waiting {
  const readyAt = f.readyAt ?? f.enqueuedAt + f.delayMs;
  const until = new Date(readyAt).toISOString();
  const when = `${until} (${relative(readyAt - f.now)})`;
  const nobody = workers.seen === 0 ? `; ${noWorkerWords(f)}` : '';
  if (f.attemptsMade === 0) {
    return {
      reason: 'delayed',
      message: `delayed until ${when}${nobody}`,
      since: iso(f.enqueuedAt),
      until,
      workers,
    };
  }
  // A retried failure: BullMQ put the job back in the delayed set with attemptsMade > 0.
  const lastError = firstLine(f.failedReason);
  const run = f.run ?? f.attemptsMade + 1;
  const what = lastError ? `failed: ${lastError}` : 'failed';
  return {
    reason: 'backoff',
    message: `backing off after run ${run - 1} ${what}; run ${run} at ${when}${nobody}`,
    since: f.progress?.at ?? iso(f.enqueuedAt),
    until,
    workers,
    ...(lastError ? { lastError } : {}),
  };
}

function queued(f: WaitingFacts, workers: Counts): Waiting {
  const ahead = f.ahead ?? 0;
  const place = ahead === 0 ? 'next in line' : `queued behind ${plural(ahead, 'job')}`;
  const since = iso(Math.max(f.enqueuedAt + (f.attemptsMade === 0 ? f.delayMs : 0), atOf(f.progress)));
  const base = { since, ahead, workers };
  if (f.paused) {
    return {
      reason: 'queued',
      message: `${place}; the queue is paused (Queue.resume() lets workers take jobs)`,
      ...base,
    };
  }
  if (workers.seen === 0) return { reason: 'no-worker', message: `${place}; ${noWorkerWords(f)}`, ...base };
  const resting = f.workers.filter((w) => w.notTaking !== undefined);
  if (resting.length === workers.seen) {
    return { reason: 'workers-unavailable', message: `${place}; ${restingWords(resting)}`, ...base };
  }
  const fleet = plural(workers.seen, 'worker');
  if (workers.busySlots >= workers.slots) {
    const busy = workers.slots === 1 ? 'its one slot busy' : `all ${workers.slots} slots busy`;
    return { reason: 'workers-busy', message: `${place}; ${fleet}, ${busy}`, ...base };
  }
  return {
    reason: 'queued',
    message: `${place}; ${fleet}, ${workers.busySlots} of ${workers.slots} slots busy`,
    ...base,
  };
}

/** Workers named in a message, past which the rest are counted. */
const NAMED_WORKERS = 3;

function restingWords(resting: WorkerPresence[]): string {
  const named = resting.slice(0, NAMED_WORKERS).map((w) => `${w.id} on ${w.host}: ${w.notTaking}`);
  const more =
    resting.length > NAMED_WORKERS ? `; and ${plural(resting.length - NAMED_WORKERS, 'more worker')}` : '';
  const fleet =
    resting.length === 1
      ? 'the one live worker takes no'
      : `none of the ${resting.length} live workers takes`;
  return `${fleet} jobs now (${named.join('; ')}${more})`;
}

function noWorkerWords(f: WaitingFacts): string {
  const limit = relativeSpan(f.staleMs);
  if (!f.newestSeenAt)
    return `no worker on this queue (none seen for ${limit}): start one (stevedore worker)`;
  const ago = relativeSpan(f.now - Date.parse(f.newestSeenAt));
  return `no worker on this queue (the last one was seen ${ago} ago, at ${f.newestSeenAt}): start one (stevedore worker)`;
}

function atOf(progress: JobProgress | null): number {
  const at = progress ? Date.parse(progress.at) : Number.NaN;
  return Number.isNaN(at) ? 0 : at;
}

function firstLine(text: string | undefined): string | undefined {
  const line = text?.split('\n', 1)[0]?.trim();
  if (!line) return undefined;
  return line.length > LAST_ERROR_CHARS ? `${line.slice(0, LAST_ERROR_CHARS - 1)}…` : line;
}

const iso = (ms: number): string => new Date(ms).toISOString();

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** "in 42 s", "in 3 min", or "due now" for a time already past. */
function relative(ms: number): string {
  return ms <= 0 ? 'due now' : `in ${relativeSpan(ms)}`;
}

function relativeSpan(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} days`;
}

/** Bytes in the units `docker pull` shows (decimal: kB, MB, GB). */
function bytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = n;
  let unit = -1;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
