import { Writable } from 'node:stream';

/**
 * Forwards to `target` everything after its first `skip` bytes, with the target's
 * backpressure. Used when an adopted container's output is replayed from the engine's logs:
 * the bytes an earlier worker already kept are not written twice.
 */
export class SkipBytes extends Writable {
  constructor(
    private readonly target: Writable,
    private skip: number,
  ) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    let data = chunk;
    if (this.skip > 0) {
      const dropped = Math.min(this.skip, data.length);
      this.skip -= dropped;
      data = data.subarray(dropped);
    }
    if (data.length === 0 || this.target.write(data)) callback();
    else this.target.once('drain', () => callback());
  }
}
