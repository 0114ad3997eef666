import { Transform, type TransformCallback } from 'node:stream';

/**
 * Docker's engine (20.10) reports an exec whose program cannot start as exit code 126 for every
 * cause, with runc's message written into the command's stdout. A shell says 127 for a missing
 * program, and so do Stevedore's other runtimes: this reads the message and tells which.
 */
const START_FAILED = 'OCI runtime exec failed';
const NOT_FOUND = /no such file or directory|executable file not found/;
/** How long output shorter than the marker is held before it counts as the program's own. */
const HOLD_MS = 100;

/** The exit code a shell would give for an exec the engine could not start. */
export function execStartExitCode(exitCode: number, startFailure: string | null): number {
  if (exitCode !== 126 || startFailure === null) return exitCode;
  return NOT_FOUND.test(startFailure) ? 127 : 126;
}

/**
 * Passes the command's stdout through, except an engine start-failure message at its very
 * start, which it keeps (`failure`) for the exit code and stderr instead.
 */
export class StartFailureFilter extends Transform {
  failure: string | null = null;
  private head: Buffer | null = Buffer.alloc(0);
  private timer: NodeJS.Timeout | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.head === null || this.failure !== null) {
      if (this.failure !== null) this.failure += chunk.toString();
      else this.push(chunk);
      callback();
      return;
    }
    this.head = Buffer.concat([this.head, chunk]);
    this.decide(false);
    callback();
  }

  override _flush(callback: TransformCallback): void {
    this.decide(true);
    callback();
  }

  private decide(atEnd: boolean): void {
    const head = this.head;
    if (head === null) return;
    const marker = Buffer.from(START_FAILED);
    const prefix = head.subarray(0, Math.min(head.length, marker.length));
    if (!marker.subarray(0, prefix.length).equals(prefix)) {
      this.release();
      return;
    }
    if (head.length >= marker.length) {
      this.failure = head.toString();
      this.head = null;
      return;
    }
    if (atEnd) this.release();
    else this.timer ??= setTimeout(() => this.release(), HOLD_MS);
  }

  private release(): void {
    clearTimeout(this.timer);
    if (this.head && this.head.length > 0) this.push(this.head);
    this.head = null;
  }
}
