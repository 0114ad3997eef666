import { open } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { waitForDrain } from '../../executors/docker/attach/demux.js';
import type { OutputSink } from '../../executors/executor.js';
import { emptyStream, type StreamSummary, TAIL_BYTES, utf8Tail } from '../../jobs/result.js';
import { BlockFile } from './block-file.js';
import type { LiveOutput } from './live-output.js';

/** Up to 4 bytes more than TAIL_BYTES are kept, so the tail can be cut on a character boundary. */
const TAIL_KEEP_BYTES = TAIL_BYTES + 4;

/**
 * Bytes of each stream of a job a worker keeps on disk unless told otherwise: more than a batch
 * job's log ever needs (data belongs in a mount), little enough that a job printing forever
 * cannot fill the log disk for every other job (2 GiB a job at most, stdout and stderr).
 */
export const DEFAULT_MAX_OUTPUT_BYTES = 1024 ** 3;

/** The file's bound, and who hears when a stream first reaches it. */
export interface FileCap {
  /** Bytes of the stream the file keeps at most; the rest is counted, not written. */
  maxBytes: number;
  /** Called once, when the first byte past the cap is dropped, with the stream's byte count then. */
  onCapped?: (atByte: number) => void;
}

/**
 * Where one output stream of a run goes: the text to a file (with the file's backpressure) up
 * to the cap, a bounded live copy to Redis, the last TAIL_BYTES in memory for the result, and
 * a byte count. Past the cap, bytes still reach the count, tail and live copy (so the end of
 * the output stays visible), but not the file, and they flow at once (no disk to wait for).
 * Takes chunks as a Writable, or copies of a reader's reused buffer (writeCopy, see
 * OutputSink in executors/executor.ts).
 */
export class OutputCapture extends Writable implements OutputSink {
  private file: BlockFile | undefined;
  private readonly tail = Buffer.allocUnsafe(TAIL_KEEP_BYTES);
  private tailLength = 0;
  private count = 0;
  /** Bytes given to the file (from the start of the stream, an earlier worker's included). */
  private kept = 0;
  private capNoted = false;
  /** Why the file stopped taking output (disk full, say), and how many bytes it holds. */
  private fileFailure: { error: Error; bytes: number } | null = null;
  /** A 'drain' is promised to a writeCopy caller (one wait on the file, however many calls). */
  private drainPromised = false;
  /** When the latest bytes came (ms since epoch; 0: none yet), for the no-output timeout. */
  lastBytesAt = 0;

  constructor(
    private readonly path: string | null,
    private readonly live: LiveOutput | null = null,
    /** Bytes already in the file from an earlier worker's part of this run (adoption). */
    earlier: { bytes: number; tail: Buffer } = { bytes: 0, tail: Buffer.alloc(0) },
    private readonly cap: FileCap = { maxBytes: DEFAULT_MAX_OUTPUT_BYTES },
  ) {
    super({ highWaterMark: 256 * 1024 });
    // Appends only when continuing an adopted run; a run started afresh replaces what an
    // interrupted earlier try of the same attempt left.
    const flags = earlier.bytes > 0 ? 'a' : 'w';
    this.count = earlier.bytes;
    // An adopted run's file holds what the earlier worker kept; the replay skips exactly that
    // much, so a file at the cap takes nothing more.
    this.kept = earlier.bytes;
    this.keepTail(earlier.tail);
    if (!path) return;
    const file = new BlockFile(path, flags);
    this.file = file;
    // A file that fails (disk full, I/O error) must neither crash the worker nor stall the
    // container: from then on output only counts and goes live, and close() reports the failure.
    file.on('error', (error: Error) => {
      this.fileFailure ??= { error, bytes: earlier.bytes + file.written };
      this.file = undefined;
    });
  }

  writeCopy(view: Buffer): boolean {
    // Behind chunks still queued, these bytes wait their turn, as a copy.
    if (this.writableLength > 0 || this.writableEnded || this.destroyed) return this.write(Buffer.from(view));
    this.record(view);
    const file = this.file;
    if (!file) return true;
    const room = this.roomFor(view.length);
    if (room === 0 || file.writeCopy(room === view.length ? view : view.subarray(0, room))) return true;
    if (!this.drainPromised) {
      this.drainPromised = true;
      whenFileReady(file, () => {
        this.drainPromised = false;
        this.emit('drain');
      });
    }
    return false;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.record(chunk);
    const file = this.file;
    const room = file ? this.roomFor(chunk.length) : 0;
    if (!file || room === 0 || file.write(room === chunk.length ? chunk : chunk.subarray(0, room)))
      callback();
    else whenFileReady(file, () => callback());
  }

  /**
   * How many of the next `length` bytes (already counted) go to the file: all of them until the
   * cap, then none. One comparison per chunk, so the fast path stays as fast.
   */
  private roomFor(length: number): number {
    const left = this.cap.maxBytes - this.kept;
    if (length <= left) {
      this.kept += length;
      return length;
    }
    const room = Math.max(0, left);
    this.kept += room;
    if (!this.capNoted) {
      this.capNoted = true;
      this.cap.onCapped?.(this.count - length + room);
    }
    return room;
  }

  /** Counts the bytes and copies them to the live copy and the tail (the file is the caller's). */
  private record(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.lastBytesAt = Date.now();
    this.count += bytes.length;
    this.live?.push(bytes);
    this.keepTail(bytes);
  }

  private keepTail(bytes: Buffer): void {
    if (bytes.length >= TAIL_KEEP_BYTES) {
      bytes.copy(this.tail, 0, bytes.length - TAIL_KEEP_BYTES);
      this.tailLength = TAIL_KEEP_BYTES;
      return;
    }
    const old = Math.min(this.tailLength, TAIL_KEEP_BYTES - bytes.length);
    this.tail.copyWithin(0, this.tailLength - old, this.tailLength);
    bytes.copy(this.tail, old);
    this.tailLength = old + bytes.length;
  }

  override _final(callback: (error?: Error | null) => void): void {
    const file = this.file;
    if (!file) {
      callback();
      return;
    }
    // A failure while the last block is written is reported by close(), like any other.
    file.end(() => callback());
  }

  summary(): StreamSummary {
    if (this.count === 0 && !this.path) return emptyStream();
    return {
      bytes: this.count,
      // What the file was given; a file that failed says how much it holds in close()'s error.
      keptBytes: this.path ? this.kept : 0,
      tail: utf8Tail(this.tail.subarray(0, this.tailLength)),
      path: this.path,
      truncated: this.live?.truncated ?? false,
    };
  }

  /** Ends the capture and waits until the file is flushed and closed. */
  async close(): Promise<void> {
    if (this.writableFinished) return;
    await new Promise<void>((resolve, reject) => {
      this.once('finish', resolve);
      this.once('error', reject);
      this.end();
    });
    const file = this.file;
    if (file && !file.closed) await new Promise<void>((r) => file.once('close', () => r()));
    await this.live?.finish();
    const failed = this.fileFailure;
    if (failed) {
      throw new Error(
        `output file ${this.path} holds only the first ${failed.bytes} of ${this.count} bytes: ${failed.error.message} (the result's byte count and tail, and the live copy for \`stevedore logs\`, are kept as usual)`,
        { cause: failed.error },
      );
    }
  }
}

/** Calls back once `file` drained, or failed (then it takes no more and nobody must wait for it). */
function whenFileReady(file: BlockFile, callback: () => void): void {
  waitForDrain(file).then(callback, callback);
}

/** What an earlier worker already wrote to `path`: its size and its last bytes. */
export async function keptSoFar(path: string | null): Promise<{ bytes: number; tail: Buffer }> {
  if (!path) return { bytes: 0, tail: Buffer.alloc(0) };
  const file = await open(path, 'r').catch(() => null);
  if (!file) return { bytes: 0, tail: Buffer.alloc(0) };
  try {
    const { size } = await file.stat();
    const length = Math.min(size, TAIL_KEEP_BYTES);
    const tail = Buffer.alloc(length);
    await file.read(tail, 0, length, size - length);
    return { bytes: size, tail };
  } finally {
    await file.close();
  }
}
