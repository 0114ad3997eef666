import type { Duplex, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type Dockerode from 'dockerode';
import type { Logger } from 'pino';
import type { OutputSink, StreamCounts } from '../executor.js';
import { DockerDemux } from './attach/demux.js';
import { attachRaw } from './attach/raw-attach.js';
import { SkipBytes } from './attach/skip-bytes.js';

export interface OutputSinks {
  stdout: OutputSink;
  stderr: OutputSink;
}

const none = (): StreamCounts => ({ stdout: 0, stderr: 0 });

/**
 * Follows one container's output into its sinks: attached before start, or after an adoption or
 * an engine outage replayed from the engine's log copy (skipping what the sinks already hold) or
 * attached from then on. One connection at a time: a new one replaces the old.
 */
export class OutputFollower {
  private socket: Readable | Duplex | undefined;
  /** A followed log still waiting for the engine's headers (resume); undefined otherwise. */
  private pending: Promise<unknown> | undefined;
  private done: Promise<void> = Promise.resolve();
  /** Bytes the current connection handed to the sinks. */
  private written: StreamCounts = none();
  /** Bytes the sinks held when the current connection began. */
  private alreadyKept: StreamCounts = none();
  /** Whether the current connection replays from the start (then it skips alreadyKept itself). */
  private replaying = false;

  constructor(
    private readonly docker: Dockerode,
    readonly sinks: OutputSinks,
  ) {}

  /**
   * Attaches to the output (and stdin) from now: over our own connection, read with one reused
   * buffer (raw-attach.ts), where the client talks plain HTTP; through dockerode otherwise.
   */
  async attach(container: Dockerode.Container, stdin: boolean, alreadyKept = none()): Promise<void> {
    const raw = await attachRaw(this.docker, container.id, { stdin }, this.sinks);
    if (raw) {
      this.use(raw.socket, raw.done, raw.written, alreadyKept, false);
      return;
    }
    const stream = (await container.attach({
      stream: true,
      stdout: true,
      stderr: true,
      stdin,
      hijack: true,
    })) as Duplex;
    const demux = new DockerDemux(this.sinks.stdout, this.sinks.stderr);
    this.use(stream, pipeline(stream, demux), demux.written, alreadyKept, false);
  }

  /**
   * Follows a container someone else was following (adoption, an engine back after an outage):
   * with a log driver that keeps output, the engine's logs are replayed from the start, skipping
   * what the sinks hold; otherwise attached from now if it runs (what it wrote meanwhile is
   * lost). Resolves with whether it was replayed.
   */
  async resume(
    container: Dockerode.Container,
    info: Dockerode.ContainerInspectInfo,
    alreadyKept: StreamCounts,
  ): Promise<boolean> {
    this.destroy(); // the old connection must never deliver alongside the new one
    const replayed = (info.HostConfig.LogConfig?.Type ?? 'none') !== 'none';
    if (replayed) {
      const demux = new DockerDemux(
        new SkipBytes(this.sinks.stdout, alreadyKept.stdout),
        new SkipBytes(this.sinks.stderr, alreadyKept.stderr),
      );
      // Not awaited here: Podman 4.3 sends the headers of a followed log only with its first
      // line, so a silent container (a sleep) held the adoption until it wrote (seen: for ever).
      const opening = container.logs({
        follow: true,
        stdout: true,
        stderr: true,
      }) as unknown as Promise<Readable>;
      const done = opening.then((logs) => {
        if (this.pending !== done) {
          logs.destroy(); // let go of before it opened
          return undefined;
        }
        this.socket = logs;
        return pipeline(logs, demux);
      });
      this.use(
        undefined,
        done.then(() => undefined),
        demux.written,
        alreadyKept,
        true,
      );
      this.pending = done;
    } else if (info.State.Running) {
      await this.attach(container, false, alreadyKept);
    } else {
      this.use(undefined, Promise.resolve(), none(), alreadyKept, false);
    }
    return replayed;
  }

  /** Sends `input` to the program's stdin with backpressure, then half-closes (the engine closes its stdin). */
  pipeStdin(input: Readable, log: Logger, containerId: string): void {
    const socket = this.socket as Duplex | undefined;
    if (!socket) return;
    input.pipe(socket, { end: false });
    input.once('end', () => socket.end());
    input.on('error', (error) => {
      log.warn({ containerId, err: error }, 'stdin source failed; closing stdin');
      socket.end();
    });
  }

  /** Settles when the current connection ended and every byte reached the sinks; rejects when it broke. */
  drained(): Promise<void> {
    return this.done;
  }

  /** Whether the current connection is still open, or opening (it ends when the container exits). */
  get open(): boolean {
    if (this.socket === undefined) return this.pending !== undefined;
    return !this.socket.destroyed && !this.socket.readableEnded;
  }

  /** Bytes of each stream the sinks hold now. */
  kept(): StreamCounts {
    const total = (name: keyof StreamCounts): number =>
      this.replaying
        ? Math.max(this.alreadyKept[name], this.written[name])
        : this.alreadyKept[name] + this.written[name];
    return { stdout: total('stdout'), stderr: total('stderr') };
  }

  /** Lets go of the connection; the sinks get nothing more from it. */
  destroy(): void {
    this.pending = undefined;
    this.socket?.destroy();
  }

  private use(
    socket: Readable | Duplex | undefined,
    done: Promise<void>,
    written: StreamCounts,
    alreadyKept: StreamCounts,
    replaying: boolean,
  ): void {
    this.socket = socket;
    this.pending = undefined;
    this.done = done;
    // Keep an early failure from being reported as unhandled; wait() rethrows it.
    done.catch(() => undefined);
    this.written = written;
    this.alreadyKept = alreadyKept;
    this.replaying = replaying;
  }
}
