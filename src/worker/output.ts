import { open } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { emptyStream, type StreamSummary, TAIL_BYTES, utf8Tail } from '../jobs/result.js';
import { BlockFile } from './block-file.js';
import type { LiveOutput } from './live-output.js';

/**
 * Where one output stream of a run goes: the full text to a file (with the file's
 * backpressure), a bounded live copy to Redis, the last TAIL_BYTES in memory for the result,
 * and a byte count.
 */
export class OutputCapture extends Writable {
  private file: BlockFile | undefined;
  private tail: Buffer = Buffer.alloc(0);
  private count = 0;

  constructor(
    private readonly path: string | null,
    private readonly live: LiveOutput | null = null,
    /** Bytes already in the file from an earlier worker's part of this run (adoption). */
    earlier: { bytes: number; tail: Buffer } = { bytes: 0, tail: Buffer.alloc(0) },
  ) {
    super({ highWaterMark: 256 * 1024 });
    // Appends only when continuing an adopted run; a run started afresh replaces what an
    // interrupted earlier try of the same attempt left.
    const flags = earlier.bytes > 0 ? 'a' : 'w';
    if (path) this.file = new BlockFile(path, flags);
    this.count = earlier.bytes;
    this.tail = earlier.tail;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.count += chunk.length;
    this.live?.push(chunk);
    // Keep up to 4 extra bytes so the tail can be cut on a character boundary. A big chunk is
    // kept by reference (no copy per chunk at full output speed): it is not written to after.
    const keep = TAIL_BYTES + 4;
    this.tail =
      chunk.length >= keep
        ? chunk.subarray(chunk.length - keep)
        : Buffer.concat([this.tail, chunk]).subarray(-keep);
    if (!this.file) {
      callback();
      return;
    }
    if (this.file.write(chunk)) callback();
    else this.file.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.file) {
      callback();
      return;
    }
    this.file.end(() => callback());
  }

  summary(): StreamSummary {
    if (this.count === 0 && !this.path) return emptyStream();
    return {
      bytes: this.count,
      tail: utf8Tail(this.tail),
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
    if (this.file && !this.file.closed) await new Promise<void>((r) => this.file?.once('close', () => r()));
    await this.live?.finish();
  }
}

/** What an earlier worker already wrote to `path`: its size and its last bytes. */
export async function keptSoFar(path: string | null): Promise<{ bytes: number; tail: Buffer }> {
  if (!path) return { bytes: 0, tail: Buffer.alloc(0) };
  const file = await open(path, 'r').catch(() => null);
  if (!file) return { bytes: 0, tail: Buffer.alloc(0) };
  try {
    const { size } = await file.stat();
    const length = Math.min(size, TAIL_BYTES + 4);
    const tail = Buffer.alloc(length);
    await file.read(tail, 0, length, size - length);
    return { bytes: size, tail };
  } finally {
    await file.close();
  }
}
