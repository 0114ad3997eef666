import { Writable } from 'node:stream';

/** A Writable that keeps everything written to it. */
export class Sink extends Writable {
  private chunks: Buffer[] = [];
  /** The most bytes ever queued in this sink: stays near one write when its producer honours backpressure. */
  maxQueued = 0;

  constructor(private readonly delayMs = 0) {
    // A small buffer so that a slow sink really pushes back on its producer.
    super({ highWaterMark: delayMs > 0 ? 1024 : 16 * 1024 });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.chunks.push(chunk);
    this.maxQueued = Math.max(this.maxQueued, this.writableLength);
    if (this.delayMs > 0) setTimeout(callback, this.delayMs);
    else callback();
  }

  get buffer(): Buffer {
    return Buffer.concat(this.chunks);
  }

  get text(): string {
    return this.buffer.toString('utf8');
  }
}
