import { type FileHandle, open } from 'node:fs/promises';
import { Writable } from 'node:stream';

/** Output is written to its file in blocks of this size (the last one when the stream ends). */
export const BLOCK_BYTES = 1024 * 1024;
/** A block that is not full is written after this long, so the file follows slow output closely. */
export const BLOCK_FLUSH_MS = 50;
/**
 * A block goes to the kernel in write() calls of at most this size: the kernel sizes its
 * page-cache folios by the write, and large ones get much dearer once the page cache is big,
 * while smaller writes cost more calls. 256 KiB was the cheapest (BENCHMARKS.md, "256 KiB").
 */
export const WRITE_SLICE_BYTES = 256 * 1024;

/**
 * A file written in 1 MiB blocks: chunks are copied into the current block, which is written
 * (in WRITE_SLICE_BYTES writes) once full or BLOCK_FLUSH_MS after its last byte, while the next
 * one fills: a write per 64 KiB chunk (fs.WriteStream) cost more than the copy (BENCHMARKS.md).
 * At most one write is in flight, in order, and a full block waits for it: the disk's pace
 * reaches the container through backpressure.
 */
export class BlockFile extends Writable {
  private readonly handle: Promise<FileHandle>;
  private block: Buffer | null = null;
  private spare: Buffer | null = null;
  private blockFill = 0;
  private writing: Promise<void> | null = null;
  private failure: Error | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Bytes the file has taken so far. */
  written = 0;

  constructor(path: string, flags: 'w' | 'a') {
    super({ highWaterMark: BLOCK_BYTES });
    this.handle = open(path, flags);
    this.handle.catch(() => undefined); // reported by the first write
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.take(chunk, 0, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.cancelFlush();
    this.writeBlock()
      .then(() => this.settled())
      .then(async () => (await this.handle).close())
      .then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.cancelFlush();
    // After _final the handle is closed already; closing again only fails quietly.
    this.handle.then(
      (h) => h.close().catch(() => undefined),
      () => undefined,
    );
    callback(error);
  }

  /**
   * Copies `view` into blocks before returning (the caller may reuse it then); answers like
   * write(). Behind queued chunks, or when a full block has to wait for the write in flight,
   * the rest goes through write() as a copy.
   */
  writeCopy(view: Buffer): boolean {
    if (this.writableLength > 0 || this.writableEnded || this.destroyed || this.failure) {
      return this.write(Buffer.from(view));
    }
    const offset = this.fill(view, 0);
    if (offset < view.length) return this.write(Buffer.from(view.subarray(offset)));
    this.scheduleFlush();
    return true;
  }

  /**
   * Copies `chunk` from `offset` into blocks and calls back; synchronously, unless a full block
   * has to wait for the write in flight (then it goes on once that write is done).
   */
  private take(chunk: Buffer, offset: number, callback: (error?: Error | null) => void): void {
    if (this.failure) {
      callback(this.failure);
      return;
    }
    const reached = this.fill(chunk, offset);
    if (reached < chunk.length) {
      this.writeBlock().then(() => this.take(chunk, reached, callback), callback);
      return;
    }
    this.scheduleFlush();
    callback();
  }

  /**
   * Copies from `offset` into blocks, starting a block's write when it is full, until the chunk
   * is taken or a full block must wait for the write in flight; returns how far it got.
   */
  private fill(chunk: Buffer, offset: number): number {
    while (offset < chunk.length) {
      if (!this.block) {
        this.block = this.spare ?? Buffer.allocUnsafe(BLOCK_BYTES);
        this.spare = null;
      }
      const copied = chunk.copy(this.block, this.blockFill, offset);
      this.blockFill += copied;
      offset += copied;
      if (this.blockFill === this.block.length) {
        if (this.writing) return offset;
        this.startWrite();
      }
    }
    return offset;
  }

  /** A block that is not full is written BLOCK_FLUSH_MS after its last byte came. */
  private scheduleFlush(): void {
    if (this.blockFill === 0 || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.writeBlock().catch(() => undefined); // a failure is kept for the next write or the end
    }, BLOCK_FLUSH_MS);
  }

  /** Waits for the write in flight, then starts writing the current block (if it holds anything). */
  private async writeBlock(): Promise<void> {
    // Checked and taken with no await in between, so two callers never write at once.
    while (this.writing) await this.writing;
    if (this.failure) throw this.failure;
    this.startWrite();
  }

  /** Starts writing the current block; only when no write is in flight. */
  private startWrite(): void {
    const block = this.block;
    const length = this.blockFill;
    if (!block || length === 0) return;
    this.block = null;
    this.blockFill = 0;
    this.cancelFlush();
    this.writing = this.writeAll(block, length).then(
      () => {
        this.spare = block;
        this.writing = null;
      },
      (error: Error) => {
        this.failure = error;
        this.writing = null;
      },
    );
  }

  /** Resolves when no write is in flight; rejects with the first write's failure. */
  private async settled(): Promise<void> {
    while (this.writing) await this.writing;
    if (this.failure) throw this.failure;
  }

  private async writeAll(block: Buffer, length: number): Promise<void> {
    const handle = await this.handle;
    for (let done = 0; done < length; ) {
      const { bytesWritten } = await handle.write(block, done, Math.min(WRITE_SLICE_BYTES, length - done));
      done += bytesWritten;
      this.written += bytesWritten;
    }
  }

  private cancelFlush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
