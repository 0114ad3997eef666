import { Writable } from 'node:stream';

/** Docker's multiplexed stream frame header: [stream, 0, 0, 0, size(uint32 BE)]. */
const HEADER_BYTES = 8;
const STDERR_FRAME = 2;

/**
 * Splits Docker's multiplexed attach stream into stdout and stderr, byte for byte.
 * Unlike dockerode's `modem.demuxStream`, it honours the targets' backpressure: a chunk is
 * acknowledged only once both targets have accepted its payload, so a slow consumer slows
 * the container's output instead of growing the worker's memory.
 */
export class DockerDemux extends Writable {
  private header = Buffer.alloc(HEADER_BYTES);
  private headerFill = 0;
  private frameRemaining = 0;
  private frameStream: 'stdout' | 'stderr' = 'stdout';
  /** Payload bytes handed to each target so far. */
  readonly written = { stdout: 0, stderr: 0 };

  constructor(
    private readonly stdout: Writable,
    private readonly stderr: Writable,
  ) {
    super({ highWaterMark: 64 * 1024 });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    let offset = 0;
    const blocked = new Set<Writable>();
    while (offset < chunk.length) {
      if (this.frameRemaining === 0) {
        const take = Math.min(HEADER_BYTES - this.headerFill, chunk.length - offset);
        chunk.copy(this.header, this.headerFill, offset, offset + take);
        this.headerFill += take;
        offset += take;
        if (this.headerFill < HEADER_BYTES) break;
        this.headerFill = 0;
        const kind = this.header[0];
        this.frameRemaining = this.header.readUInt32BE(4);
        // Frame 0 (stdin) never arrives without a TTY; everything that is not stderr is stdout.
        this.frameStream = kind === STDERR_FRAME ? 'stderr' : 'stdout';
        continue;
      }
      const take = Math.min(this.frameRemaining, chunk.length - offset);
      const target = this.frameStream === 'stderr' ? this.stderr : this.stdout;
      this.written[this.frameStream] += take;
      if (!target.write(chunk.subarray(offset, offset + take))) blocked.add(target);
      this.frameRemaining -= take;
      offset += take;
    }
    if (blocked.size === 0) {
      callback();
      return;
    }
    Promise.all([...blocked].map(waitForDrain)).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.frameRemaining > 0 || this.headerFill > 0) {
      callback(new Error(`output stream ended inside a frame (${this.frameRemaining} bytes missing)`));
      return;
    }
    callback();
  }
}

function waitForDrain(target: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = (): void => {
      target.off('error', onError);
      resolve();
    };
    const onError = (error: Error): void => {
      target.off('drain', onDrain);
      reject(error);
    };
    target.once('drain', onDrain);
    target.once('error', onError);
  });
}
