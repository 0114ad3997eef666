import { setTimeout as sleep } from 'node:timers/promises';
import type { RedisConnection } from './connection.js';
import { keys, type QueueAddress } from './keys.js';

/** One worker's entry in the queue's presence hash (`keys.workers`), written by the worker itself. */
export interface WorkerPresence {
  id: string;
  host: string;
  pid: number;
  /** Jobs it runs at once (STEVEDORE_CONCURRENCY). */
  capacity: number;
  /** The runtime it runs jobs on (STEVEDORE_RUNTIME: docker, podman, singularity); '' from older workers. */
  runtime: string;
  /** The engine its containers live on (ContainerRuntime.engineId); '' from older workers. */
  engine: string;
  /** Ids of the jobs it runs now. */
  running: string[];
  /** ISO times: when the worker started, and its latest heartbeat. */
  startedAt: string;
  seenAt: string;
  /** Why it takes no jobs now (its engine is away, it is paused or closing); absent: it takes them. */
  notTaking?: string;
}

/** What a reader learns from the presence hash. */
export interface WorkerList {
  /** Workers seen within the staleness limit, sorted by id. */
  workers: WorkerPresence[];
  /** ISO time of the newest entry, live or stale; absent when there is none. */
  newestSeenAt?: string;
}

/** A worker writes its entry this often, and at once (coalesced) when a slot is taken or freed. */
export const PRESENCE_HEARTBEAT_MS = 5_000;
/** A worker not seen for this long counts as gone ("no worker seen for 30 s"): six missed heartbeats. */
export const DEFAULT_PRESENCE_STALE_MS = 30_000;
/** Entries not seen for this long are deleted (a crashed worker cannot delete its own); the hash expires too. */
export const PRESENCE_PRUNE_MS = 3_600_000;
/** Pruning reads the whole hash, so it runs once a minute rather than on every heartbeat. */
const PRUNE_EVERY_MS = 60_000;
/** How long a closing worker tries to delete its entry before leaving it to go stale. */
const STOP_DELETE_MS = 2_000;

const asError = (error: unknown): Error => (error instanceof Error ? error : new Error(String(error)));

function parseEntry(text: string): WorkerPresence | null {
  try {
    const entry = JSON.parse(text) as Partial<WorkerPresence>;
    if (typeof entry.id !== 'string' || typeof entry.seenAt !== 'string') return null;
    return {
      id: entry.id,
      host: entry.host ?? '',
      pid: entry.pid ?? 0,
      capacity: entry.capacity ?? 0,
      runtime: typeof entry.runtime === 'string' ? entry.runtime : '',
      engine: typeof entry.engine === 'string' ? entry.engine : '',
      running: Array.isArray(entry.running) ? entry.running : [],
      startedAt: entry.startedAt ?? entry.seenAt,
      seenAt: entry.seenAt,
      ...(typeof entry.notTaking === 'string' ? { notTaking: entry.notTaking } : {}),
    };
  } catch {
    return null; // an entry we cannot read counts as no worker
  }
}

/** The queue's live workers (one HGETALL), and when the newest entry was seen. */
export async function listWorkers(
  redis: RedisConnection,
  address: QueueAddress,
  options: { staleMs?: number; now?: number } = {},
): Promise<WorkerList> {
  return listWorkersFrom(await redis.hgetall(keys.workers(address)), options);
}

/** listWorkers on a presence hash already read (readStatus reads it in its own MULTI). */
export function listWorkersFrom(
  hash: Record<string, string>,
  options: { staleMs?: number; now?: number } = {},
): WorkerList {
  const staleMs = options.staleMs ?? DEFAULT_PRESENCE_STALE_MS;
  const now = options.now ?? Date.now();
  const entries = Object.values(hash)
    .map(parseEntry)
    .filter((entry): entry is WorkerPresence => entry !== null);
  let newest = Number.NEGATIVE_INFINITY;
  for (const entry of entries) newest = Math.max(newest, Date.parse(entry.seenAt) || newest);
  const workers = entries
    .filter((entry) => now - Date.parse(entry.seenAt) <= staleMs)
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return Number.isFinite(newest) ? { workers, newestSeenAt: new Date(newest).toISOString() } : { workers };
}

export interface PresenceOptions {
  id: string;
  host: string;
  pid: number;
  capacity: number;
  runtime: string;
  engine: string;
  /** The job ids running now, read at each write. */
  running: () => string[];
  /** Why the worker takes no jobs now, or null; read at each write (call changed() when it changes). */
  notTaking?: () => string | null;
  /** A failed write (Redis away); the next heartbeat tries again. */
  onError: (error: Error) => void;
  heartbeatMs?: number;
  now?: () => number;
}

/**
 * The worker's side of presence: HSETs its entry every heartbeat and soon after `changed()`
 * (many changes in one tick make one write), prunes long-dead entries, and HDELs itself on `stop()`.
 */
export class PresenceWriter {
  private readonly key: string;
  private readonly startedAt: string;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private dirty = false;
  private scheduled = false;
  private stopped = false;
  private lastPrune = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly redis: RedisConnection,
    address: QueueAddress,
    private readonly options: PresenceOptions,
  ) {
    this.key = keys.workers(address);
    this.now = options.now ?? Date.now;
    this.startedAt = new Date(this.now()).toISOString();
  }

  /** Writes the first entry (a failure is told to onError, not thrown) and starts the heartbeat. */
  async start(): Promise<void> {
    await this.flush();
    this.timer = setInterval(() => this.changed(), this.options.heartbeatMs ?? PRESENCE_HEARTBEAT_MS);
    this.timer.unref();
  }

  /** A slot was taken or freed: write soon, once for everything that changed in this tick. */
  changed(): void {
    if (this.stopped || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  /**
   * Stops the heartbeat and deletes the entry (a clean close: the worker is gone, not stale).
   * Bounded: with Redis away the entry stays and goes stale by itself, and close() goes on.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    const removed = (async () => {
      await this.writing;
      await this.redis.hdel(this.key, this.options.id);
    })().catch((error: unknown) => this.options.onError(asError(error)));
    await Promise.race([removed, sleep(STOP_DELETE_MS, undefined, { ref: false })]);
  }

  /** One write at a time; a change during a write makes one more write after it. */
  private async flush(): Promise<void> {
    if (this.writing) {
      this.dirty = true;
      return;
    }
    this.writing = this.write()
      .catch((error: unknown) => this.options.onError(asError(error)))
      .finally(() => {
        this.writing = undefined;
        if (this.dirty && !this.stopped) {
          this.dirty = false;
          void this.flush();
        }
      });
    await this.writing;
  }

  private async write(): Promise<void> {
    if (this.stopped) return;
    const now = this.now();
    const notTaking = this.options.notTaking?.() ?? null;
    const entry: WorkerPresence = {
      ...(notTaking === null ? {} : { notTaking }),
      id: this.options.id,
      host: this.options.host,
      pid: this.options.pid,
      capacity: this.options.capacity,
      runtime: this.options.runtime,
      engine: this.options.engine,
      running: this.options.running(),
      startedAt: this.startedAt,
      seenAt: new Date(now).toISOString(),
    };
    await this.redis
      .multi()
      .hset(this.key, entry.id, JSON.stringify(entry))
      .pexpire(this.key, PRESENCE_PRUNE_MS)
      .exec();
    if (now - this.lastPrune >= PRUNE_EVERY_MS) {
      this.lastPrune = now;
      await this.prune(now);
    }
  }

  private async prune(now: number): Promise<void> {
    const dead = Object.entries(await this.redis.hgetall(this.key))
      .filter(([, text]) => {
        const entry = parseEntry(text);
        return !entry || now - Date.parse(entry.seenAt) > PRESENCE_PRUNE_MS;
      })
      .map(([id]) => id);
    if (dead.length > 0) await this.redis.hdel(this.key, ...dead);
  }
}
