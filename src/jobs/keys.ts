/**
 * Redis keys Stevedore keeps beside BullMQ's own, under the same prefix and queue so that a
 * hash-tagged prefix (`{stevedore}`) keeps them in one Redis Cluster slot.
 */
export interface QueueAddress {
  prefix: string;
  queue: string;
}

export type OutputStream = 'stdout' | 'stderr' | 'events';

/** Default bytes of each stream of each job kept in Redis for live logs. */
export const DEFAULT_LIVE_OUTPUT_BYTES = 1024 * 1024;
/**
 * Largest chunk in one Redis stream entry: a little under 64 KiB so that the entry with its
 * listpack header still fits jemalloc's 64 KiB size class (a full 64 KiB lands in the 80 KiB one).
 */
export const LIVE_CHUNK_BYTES = 63 * 1024;
/** What Redis allocates for one full entry; the entry cap is sized with it, so memory stays under the byte cap. */
export const LIVE_ENTRY_ALLOCATION_BYTES = 64 * 1024;

const base = (a: QueueAddress): string => `${a.prefix}:${a.queue}:stevedore`;

export const keys = {
  /** Durable cancel request for a job (set before anything else, checked before a container starts). */
  cancel: (a: QueueAddress, jobId: string) => `${base(a)}:cancel:${jobId}`,
  /** Pub/sub channel on which cancel requests are announced to every worker. */
  cancelChannel: (a: QueueAddress) => `${base(a)}:cancel-channel`,
  /** Results of jobs that did not complete through BullMQ (failed, or cancelled while waiting). */
  result: (a: QueueAddress, jobId: string) => `${base(a)}:result:${jobId}`,
  /** Earlier runs of a job that ended without its final result (a list of AttemptRecord JSON). */
  runs: (a: QueueAddress, jobId: string) => `${base(a)}:runs:${jobId}`,
  /** Finished jobs by finish time, to keep Stevedore's keys of the same newest ones BullMQ keeps. */
  finished: (a: QueueAddress, kind: 'completed' | 'failed') => `${base(a)}:finished:${kind}`,
  /** Bounded live copy of one output stream of a job (a Redis stream of chunks). */
  output: (a: QueueAddress, jobId: string, stream: OutputStream) => `${base(a)}:output:${jobId}:${stream}`,
  /** The queue's workers: a hash of worker id → WorkerPresence JSON, each entry kept fresh by its worker. */
  workers: (a: QueueAddress) => `${base(a)}:workers`,
  /**
   * Where a running job's gateway is (jobs/gateway/registration.ts): worker address, attempt and
   * the attempt's secret. Expires with the job's lock when its worker dies.
   */
  gateway: (a: QueueAddress, jobId: string) => `${base(a)}:gateway:${jobId}`,
  /**
   * Jobs with a queue timeout, scored by their deadline (ms on the Redis server's clock), until a
   * worker admits them or they time out (jobs/queue-timeout.ts).
   */
  queueDeadlines: (a: QueueAddress) => `${base(a)}:queue-deadlines`,
  /** Set once per job by whoever decides first: `admitted` (a worker took it in time) or `timed-out`. */
  queueVerdict: (a: QueueAddress, jobId: string) => `${base(a)}:queue-verdict:${jobId}`,
  /** The deployment's id (jobs/deployment.ts), set once and never expiring: containers carry it. */
  deployment: (a: QueueAddress) => `${base(a)}:deployment`,
};

/**
 * BullMQ's own keys that Stevedore reads directly (BullMQ 6 layout: `<prefix>:<queue>:…`), so a
 * change in BullMQ's layout is fixed here only.
 */
export const bullmqKeys = {
  /** The job's hash (data, options, progress, result). */
  job: (a: QueueAddress, jobId: string) => `${a.prefix}:${a.queue}:${jobId}`,
  /** Held by the worker running the job; expires one lock duration after that worker died. */
  lock: (a: QueueAddress, jobId: string) => `${a.prefix}:${a.queue}:${jobId}:lock`,
  /** The queue's events stream (QueueEvents reads it). */
  events: (a: QueueAddress) => `${a.prefix}:${a.queue}:events`,
  /**
   * A job's place: `wait` and `active` are lists (jobs are LPUSHed and taken from the right),
   * `prioritized` (taken only when `wait` is empty), `delayed` (score = ready time × 0x1000),
   * `completed`, `failed` and `waiting-children` are sorted sets; `paused` is a list older
   * BullMQ versions moved jobs to. `meta` holds the queue's `paused` flag.
   */
  wait: (a: QueueAddress) => `${a.prefix}:${a.queue}:wait`,
  active: (a: QueueAddress) => `${a.prefix}:${a.queue}:active`,
  paused: (a: QueueAddress) => `${a.prefix}:${a.queue}:paused`,
  prioritized: (a: QueueAddress) => `${a.prefix}:${a.queue}:prioritized`,
  delayed: (a: QueueAddress) => `${a.prefix}:${a.queue}:delayed`,
  completed: (a: QueueAddress) => `${a.prefix}:${a.queue}:completed`,
  failed: (a: QueueAddress) => `${a.prefix}:${a.queue}:failed`,
  waitingChildren: (a: QueueAddress) => `${a.prefix}:${a.queue}:waiting-children`,
  meta: (a: QueueAddress) => `${a.prefix}:${a.queue}:meta`,
};

/** How long cancel flags and side results live; finished jobs are kept as long (KEEP_FINISHED_SECONDS). */
export const SIDE_KEY_TTL_SECONDS = 7 * 24 * 3600;
/** Age limit of finished jobs: a week, for looking back at last week's runs. */
export const KEEP_FINISHED_SECONDS = SIDE_KEY_TTL_SECONDS;
/**
 * Count limit of finished jobs of each kind (completed, failed). A finished job keeps up to its
 * live-output cap per stream in Redis (1 MiB by default), so the count is what bounds Redis.
 */
export const DEFAULT_KEEP_FINISHED = 1_000;

export const DEFAULT_QUEUE = 'stevedore';
export const DEFAULT_PREFIX = 'bull';

/**
 * Why `prefix` cannot serve a Redis Cluster, or undefined when it can. Every key of a queue starts
 * with the prefix; Redis hashes only the text between a key's first `{` and the next `}` (when
 * not empty), so a prefix such as `{stevedore}` puts them all in one slot, as BullMQ's scripts
 * need. Without one, the queue's keys spread over the nodes and its scripts fail with CROSSSLOT.
 */
export function clusterPrefixProblem(prefix: string): string | undefined {
  const open = prefix.indexOf('{');
  const close = open < 0 ? -1 : prefix.indexOf('}', open + 1);
  if (open >= 0 && close > open + 1) return undefined;
  return `the key prefix ${JSON.stringify(prefix)} has no hash tag, and a Redis Cluster needs one: BullMQ's scripts touch several keys of a queue at once, which a Cluster allows only when they hash to one slot. Set STEVEDORE_PREFIX (or the client's prefix) to a hash-tagged one such as "{stevedore}"`;
}
