import { setTimeout as sleep } from 'node:timers/promises';
import { QueueEvents } from 'bullmq';
import type { RedisConnection } from './connection.js';
import { coerceError } from './errors.js';
import { bullmqKeys, type QueueAddress } from './keys.js';
import type { JobResult } from './result.js';

export interface ResultWaiterDeps {
  /** The client's own connection, for one look at the events stream's end. */
  redis: RedisConnection;
  address: QueueAddress;
  /** A new connection for QueueEvents' blocking reads. */
  connect: () => RedisConnection;
  onError: (error: Error) => void;
  /** The job's result, null while it is unfinished (the client's getResult). */
  getResult: (id: string) => Promise<JobResult | null>;
  /** The job's queue deadline (ms, Redis's clock), if it has one: asked about then, it ends. */
  deadlineOf?: (id: string) => Promise<number | null>;
}

/** How long after a queue deadline the waiter asks: the sweep's own TIME may lag ours a little. */
const DEADLINE_SLACK_MS = 50;

interface EventsHub {
  events: QueueEvents;
  connection: RedisConnection;
  /** Job id → callbacks that re-check that job's result. */
  watchers: Map<string, Set<(result?: JobResult) => void>>;
}

const EVENTS_CLOSE_MS = 1_000;
const RECHECK_MS = 5_000;

/**
 * Waits for jobs' results on the queue's events: one QueueEvents per client, opened on the first
 * wait, and every waiter registers a callback for its job id.
 */
export class ResultWaiter {
  private events: Promise<EventsHub> | undefined;

  constructor(private readonly deps: ResultWaiterDeps) {}

  /** Resolves with the result as soon as the job finishes; event-driven, not polling. */
  async wait(id: string, options: { timeoutMs?: number } = {}): Promise<JobResult> {
    const { watchers } = await this.queueEvents();
    return new Promise<JobResult>((resolve, reject) => {
      let settled = false;
      const finish = (error: Error | null, result?: JobResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearTimeout(atDeadline);
        clearInterval(recheck);
        const set = watchers.get(id);
        set?.delete(check);
        if (set?.size === 0) watchers.delete(id);
        if (error) reject(error);
        else resolve(result as JobResult);
      };
      const check = (known?: JobResult): void => {
        if (known) {
          finish(null, known);
          return;
        }
        this.deps.getResult(id).then(
          (result) => result && finish(null, result),
          (error: unknown) => finish(coerceError(error)),
        );
      };
      let atDeadline: NodeJS.Timeout | undefined;
      const timer = setTimeout(
        () => finish(new Error(`waiting for job ${id}: no result within ${options.timeoutMs} ms`)),
        options.timeoutMs ?? 2 ** 31 - 1,
      );
      // Events drive this; a slow re-check only guards against an event lost to a Redis restart.
      const recheck = setInterval(() => check(), RECHECK_MS);
      recheck.unref();
      const set = watchers.get(id) ?? new Set();
      set.add(check);
      watchers.set(id, set);
      // Listening first, then one look: a job that finished before we listened is not missed.
      check();
      // A job with a queue timeout and no worker to end it is ended by asking at its deadline.
      this.deps.deadlineOf?.(id).then(
        (deadline) => {
          if (deadline === null || settled) return;
          atDeadline = setTimeout(() => check(), Math.max(0, deadline - Date.now()) + DEADLINE_SLACK_MS);
          atDeadline.unref();
        },
        (error: unknown) => this.deps.onError(coerceError(error)),
      );
    });
  }

  async close(): Promise<void> {
    if (!this.events) return;
    const { events, connection } = await this.events;
    // QueueEvents.close() waits for its blocking read, which can hang after Redis restarted:
    // give it a moment, then cut the connection.
    await Promise.race([events.close(), sleep(EVENTS_CLOSE_MS)]);
    connection.disconnect();
  }

  private queueEvents(): Promise<EventsHub> {
    this.events ??= (async () => {
      const { redis, address, onError } = this.deps;
      const connection = this.deps.connect();
      // Read on from the stream's current end, named explicitly: with the default "$" the
      // events between "ready" and the first blocking read would be lost.
      const [newest] = await redis.xrevrange(bullmqKeys.events(address), '+', '-', 'COUNT', 1);
      const events = new QueueEvents(address.queue, {
        connection,
        prefix: address.prefix,
        lastEventId: newest?.[0] ?? '0-0',
      });
      events.on('error', onError);
      const watchers = new Map<string, Set<(result?: JobResult) => void>>();
      const notify = ({ jobId }: { jobId: string }): void => {
        for (const check of watchers.get(jobId) ?? []) check();
      };
      // A completed event carries the result itself: hand it over without asking Redis again.
      events.on('completed', ({ jobId, returnvalue }: { jobId: string; returnvalue: unknown }) => {
        const result = parseReturnValue(returnvalue);
        for (const check of watchers.get(jobId) ?? []) check(result ?? undefined);
      });
      events.on('failed', notify);
      events.on('removed', notify);
      await events.waitUntilReady();
      return { events, connection, watchers };
    })();
    return this.events;
  }
}

function parseReturnValue(value: unknown): JobResult | null {
  try {
    const parsed: unknown = typeof value === 'string' ? JSON.parse(value) : value;
    return typeof parsed === 'object' && parsed !== null && 'state' in parsed ? (parsed as JobResult) : null;
  } catch {
    return null;
  }
}
