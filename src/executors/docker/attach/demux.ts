import { Writable } from 'node:stream';
import { FrameSplitter } from './frames.js';

/**
 * Splits Docker's multiplexed stream (as a Writable) into stdout and stderr, byte for byte.
 * Unlike dockerode's `modem.demuxStream`, it honours the targets' backpressure: a chunk is
 * acknowledged only once both targets have accepted its payload, so a slow consumer slows
 * the container's output instead of growing the worker's memory. Used for the engine's logs
 * and for attach streams that raw-attach.ts cannot open itself.
 */
export class DockerDemux extends Writable {
  private readonly frames = new FrameSplitter();

  constructor(
    private readonly stdout: Writable,
    private readonly stderr: Writable,
  ) {
    super({ highWaterMark: 64 * 1024 });
  }

  /** Payload bytes handed to each target so far. */
  get written(): { stdout: number; stderr: number } {
    return this.frames.written;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const blocked = new Set<Writable>();
    this.frames.feed(chunk, 0, chunk.length, (stream, payload) => {
      const target = stream === 'stderr' ? this.stderr : this.stdout;
      if (!target.write(payload)) blocked.add(target);
    });
    if (blocked.size === 0) {
      callback();
      return;
    }
    drained(blocked).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    callback(this.frames.endError());
  }
}

/** Resolves once every one of `targets` drained; rejects with the first one's error. */
export function drained(targets: Iterable<Writable>): Promise<void> {
  return Promise.all([...targets].map(waitForDrain)).then(() => undefined);
}

export function waitForDrain(target: Writable): Promise<void> {
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
