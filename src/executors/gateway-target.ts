import type { Readable, Writable } from 'node:stream';

/** A command to run in a running container for the gateway (`stevedore exec`). */
export interface ExecStreamRequest {
  command: string[];
  /** Name or uid[:gid]; the container's own user when absent. */
  user?: string;
  workdir?: string;
  env?: Record<string, string>;
  /** Keep stdin open; without it the command reads end of file at once. */
  stdin: boolean;
  /** A terminal of this size; stdout and stderr then arrive as one stream. */
  tty?: { cols: number; rows: number };
}

/** A command running inside a container, streamed. */
export interface ExecStream {
  /** The command's stdin; null when the request did not keep it open. */
  stdin: Writable | null;
  /** stdout, or the terminal's one stream with a tty. */
  stdout: Readable;
  /** null with a tty (the terminal merges both streams). */
  stderr: Readable | null;
  /** Tells the terminal its new size; a no-op without a tty. */
  resize(size: { cols: number; rows: number }): Promise<void>;
  /** The exit code, once the command ended and its output is drained. */
  exitCode: Promise<number>;
}
