import type { Logger } from 'pino';
import type { RedisConnection } from '../../jobs/connection.js';
import { LIVE_CHUNK_BYTES, LIVE_ENTRY_ALLOCATION_BYTES, SIDE_KEY_TTL_SECONDS } from '../../jobs/keys.js';

/** How often pending output is sent to Redis while a job runs. */
const FLUSH_INTERVAL_MS = 100;
/**
 * The longest wait between sends while output comes faster than the cap per interval: the
 * Redis copy keeps only the newest capBytes anyway, so sending it 10 times a second would ship
 * (and drop) 10 caps a second for nothing.
 */
const MAX_FLUSH_INTERVAL_MS = 1_000;
/** Pending output is copied into blocks of this size, used again once sent or dropped. */
const PENDING_BLOCK_BYTES = 64 * 1024;
/** What Redis spends on a small stream entry beside its data (ID, field names, listpack headers), rounded up. */
const SMALL_ENTRY_OVERHEAD_BYTES = 64;

/**
 * Publishes one output stream of a run to Redis in bounded form, for `stevedore logs` on any
 * host: a Redis stream of chunks (≤ LIVE_CHUNK_BYTES each, field `o` = byte offset, `d` =
 * data), the newest of them that fit in capBytes of Redis memory, oldest dropped. The stream is
 * trimmed by entry count (MAXLEN), counted here from what each entry costs: a full chunk its
 * allocation, a small one (a slow writer's line per flush) its bytes and overhead, so a job
 * that prints a line a second keeps its last capBytes too, not its last few entries. At most one write is in
 * flight; meanwhile output collects in memory up to capBytes (oldest dropped), so neither a
 * fast container nor a slow Redis can grow the worker's memory or Redis beyond the cap.
 */
export class LiveOutput {
  /** Full blocks, then the one being filled (lastFill bytes of it). */
  private pending: Buffer[] = [];
  private lastFill = 0;
  /** Blocks sent or dropped, to fill again: no allocation per push at full output speed. */
  private free: Buffer[] = [];
  private pendingBytes = 0;
  /** Offset of the first pending byte in the whole stream. */
  private pendingOffset = 0;
  private produced = 0;
  private dropped = false;
  private inFlight: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private interval = FLUSH_INTERVAL_MS;
  /** What the entries this output added cost in Redis, oldest first: the ones a MAXLEN keeps. */
  private readonly costs: number[] = [];
  private costsFrom = 0;
  private keptCost = 0;
  /** Memory the kept entries may take; one full entry's worth is left for the end marker and the stream's own bookkeeping. */
  private readonly costCap: number;

  constructor(
    private readonly redis: RedisConnection,
    private readonly key: string,
    private readonly capBytes: number,
    private readonly attempt: number,
    private readonly logger: Logger,
  ) {
    this.costCap = Math.max(LIVE_ENTRY_ALLOCATION_BYTES, capBytes - LIVE_ENTRY_ALLOCATION_BYTES);
  }

  /** True once any byte was dropped from the Redis copy. */
  get truncated(): boolean {
    return this.dropped;
  }

  /** Counts one more entry of `bytes`; how many of the newest entries the stream may keep. */
  private keep(bytes: number): number {
    const cost = bytes >= LIVE_CHUNK_BYTES ? LIVE_ENTRY_ALLOCATION_BYTES : bytes + SMALL_ENTRY_OVERHEAD_BYTES;
    this.costs.push(cost);
    this.keptCost += cost;
    while (this.keptCost > this.costCap && this.costs.length - this.costsFrom > 1) {
      this.keptCost -= this.costs[this.costsFrom] as number;
      this.costsFrom += 1;
      this.dropped = true;
    }
    // The array's dropped head is cut now and then, not on every entry.
    if (this.costsFrom > 1024) {
      this.costs.splice(0, this.costsFrom);
      this.costsFrom = 0;
    }
    return this.costs.length - this.costsFrom;
  }

  /** Takes a copy of `chunk` (the caller may reuse it). */
  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.produced += chunk.length;
    let overflowed = false;
    let bytes = chunk;
    if (bytes.length > this.capBytes) {
      // Only its last capBytes can be sent: everything before is dropped uncopied.
      this.pendingOffset += this.pendingBytes + bytes.length - this.capBytes;
      this.recycle();
      bytes = bytes.subarray(bytes.length - this.capBytes);
      overflowed = this.dropped = true;
    }
    for (let at = 0; at < bytes.length; ) {
      let last = this.pending.at(-1);
      if (!last || this.lastFill === last.length) {
        last = this.free.pop() ?? Buffer.allocUnsafe(PENDING_BLOCK_BYTES);
        this.pending.push(last);
        this.lastFill = 0;
      }
      const copied = bytes.copy(last, this.lastFill, at);
      this.lastFill += copied;
      at += copied;
    }
    this.pendingBytes += bytes.length;
    // Drop the oldest full blocks while the newest capBytes are still all pending without them.
    while (this.pending.length > 1 && this.pendingBytes - (this.pending[0]?.length ?? 0) >= this.capBytes) {
      const oldest = this.pending.shift() as Buffer;
      this.pendingBytes -= oldest.length;
      this.pendingOffset += oldest.length;
      this.free.push(oldest);
      overflowed = this.dropped = true;
    }
    // More than a cap per interval: send less often (up to once a second); back to 10 a second
    // as soon as an interval's output fits the cap again.
    if (overflowed) this.interval = Math.min(MAX_FLUSH_INTERVAL_MS, this.interval * 2);
    this.timer ??= setTimeout(() => {
      this.timer = null;
      if (this.pendingBytes <= this.capBytes / 2) this.interval = FLUSH_INTERVAL_MS;
      this.flush();
    }, this.interval);
  }

  /**
   * Sends what is pending, and with `end` the end-of-attempt marker in the same round trip;
   * returns when this and earlier writes are done.
   */
  private flush(end = false): Promise<void> {
    if (this.inFlight) return this.inFlight.then(() => this.flush(end));
    // A stream that never had output needs no end marker: followers stop on the job's result.
    const marker = end && this.produced > 0;
    if (this.pendingBytes === 0 && !marker) return Promise.resolve();
    const data = Buffer.concat(this.pending, this.pendingBytes);
    const offset = this.pendingOffset;
    this.pendingOffset += this.pendingBytes;
    this.recycle();
    if (data.length > this.capBytes) this.dropped = true;
    const pipeline = this.redis.pipeline();
    for (let at = Math.max(0, data.length - this.capBytes); at < data.length; at += LIVE_CHUNK_BYTES) {
      const chunk = data.subarray(at, at + LIVE_CHUNK_BYTES);
      pipeline.xadd(this.key, 'MAXLEN', this.keep(chunk.length), '*', 'o', String(offset + at), 'd', chunk);
    }
    if (marker) {
      pipeline.xadd(
        this.key,
        'MAXLEN',
        this.costs.length - this.costsFrom + 1,
        '*',
        'eof',
        String(this.attempt),
        'o',
        String(this.produced),
      );
    }
    pipeline.expire(this.key, SIDE_KEY_TTL_SECONDS);
    this.inFlight = pipeline
      .exec()
      .then(() => undefined)
      .catch((error: unknown) => {
        this.dropped = true;
        this.logger.warn(
          { err: error, key: this.key },
          'could not publish live output; the log file keeps it',
        );
      })
      .finally(() => {
        this.inFlight = null;
      });
    return this.inFlight;
  }

  /** Empties the pending blocks into the free list (their bytes were sent, copied or dropped). */
  private recycle(): void {
    this.free.push(...this.pending);
    this.pending = [];
    this.lastFill = 0;
    this.pendingBytes = 0;
  }

  /** Flushes everything and marks the end of this attempt's output. */
  async finish(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.flush(true);
  }
}
