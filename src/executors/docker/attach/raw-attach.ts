import { connect, type Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type Dockerode from 'dockerode';
import type { OutputSink } from '../../executor.js';
import { AttachAnswer } from './attach-answer.js';
import { drained } from './demux.js';
import { FrameSplitter, type StreamName } from './frames.js';

/**
 * Bytes read from the engine per read(2), into this one buffer again and again: a fresh 64 KiB
 * buffer per read (net.Socket's default) and its garbage cost more CPU than the bytes
 * (BENCHMARKS.md, "raw socket").
 */
const READ_BUFFER_BYTES = 256 * 1024;
/**
 * After a read that found less than a quarter of the buffer, the next read waits this long, so
 * it takes several of the engine's (≤ 32 KiB) frames in one wake-up instead of one each; the
 * engine's socket buffer is large enough that it rarely waits for us (BENCHMARKS.md).
 */
const COALESCE_MS = 2;

/** Hands `view` (valid only now) to `target`, copied unless the sink copies it itself; false = wait for its 'drain'. */
function give(target: OutputSink, view: Buffer): boolean {
  return target.writeCopy ? target.writeCopy(view) : target.write(Buffer.from(view));
}

/** The docker-modem fields that say how it reaches the engine. */
export interface ModemSettings {
  socketPath?: unknown;
  host?: unknown;
  port?: unknown;
  protocol?: unknown;
  username?: unknown;
  agent?: unknown;
  pathPrefix?: unknown;
  /** docker-modem's own: the socket path, once resolved (the default is a function that looks). */
  getSocketPath?: () => Promise<unknown> | undefined;
}

/**
 * Where raw attach connects: the engine's unix socket, or a plain-HTTP host and port. Null for
 * what only dockerode does (TLS, ssh, a custom agent or path prefix): those clients attach
 * through dockerode.
 */
export async function rawEndpoint(
  modem: ModemSettings,
): Promise<{ path: string } | { host: string; port: number } | null> {
  const plain = modem.protocol === 'http' && !modem.username && !modem.agent;
  if (!plain || (modem.pathPrefix !== undefined && modem.pathPrefix !== '/')) return null;
  if (modem.socketPath !== undefined) {
    const path = (await modem.getSocketPath?.()) ?? modem.socketPath;
    return typeof path === 'string' ? { path } : null;
  }
  const port = Number(modem.port);
  const host = modem.host;
  if (typeof host === 'string' && /^[\w.-]+$|^\[[\da-f:]+\]$/i.test(host) && Number.isInteger(port)) {
    return { host: host.replace(/^\[|\]$/g, ''), port };
  }
  return null;
}

/** The container's output, followed over our own connection. */
export interface RawAttachment {
  /** The hijacked connection: stdin goes to it, end() closes the program's stdin, destroy() lets go. */
  readonly socket: Socket;
  /** Settles when the engine ended the stream and every byte was handed to the targets. */
  readonly done: Promise<void>;
  /** Payload bytes handed to each target so far. */
  readonly written: { stdout: number; stderr: number };
}

/**
 * Attaches to a container's stdout and stderr (and stdin) the way `docker attach` does: POST
 * /containers/{id}/attach with `Upgrade: tcp`, then the connection carries the multiplexed
 * stream. Read with one reused buffer (net's `onread`) and demultiplexed straight into the
 * targets, which copy what they keep; a target's backpressure pauses the reads. Resolves once
 * the engine answered; null when the client does not talk to the engine over plain HTTP (then
 * dockerode's attach is used).
 */
export async function attachRaw(
  docker: Dockerode,
  containerId: string,
  options: { stdin: boolean },
  targets: Record<StreamName, OutputSink>,
): Promise<RawAttachment | null> {
  const modem = docker.modem as unknown as ModemSettings & {
    version?: unknown;
    headers?: Record<string, string>;
  };
  const where = await rawEndpoint(modem);
  if (!where) return null;
  const version = typeof modem.version === 'string' ? `/${modem.version}` : '';
  const query = `stream=1&stdout=1&stderr=1${options.stdin ? '&stdin=1' : ''}`;
  const extra = Object.entries(modem.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`);
  const request =
    `POST ${version}/containers/${encodeURIComponent(containerId)}/attach?${query} HTTP/1.1\r\n` +
    `Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: text/plain\r\n${extra.join('')}\r\n`;

  const frames = new FrameSplitter();
  const answer = new AttachAnswer();
  let socket: Socket;
  let settle: { resolve: () => void; reject: (error: Error) => void } | null = null;
  const done = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  done.catch(() => undefined); // the caller awaits it; an early failure is not unhandled

  const blocked = new Set<Writable>();
  const emit = (stream: StreamName, payload: Buffer): void => {
    const target = targets[stream];
    if (!give(target, payload)) blocked.add(target);
  };
  /**
   * Whether to read on at once (onread's answer; false pauses the socket): not until every
   * blocked target drained, and not for COALESCE_MS after a small read.
   */
  const readOn = (nread: number): boolean => {
    if (blocked.size === 0) {
      if (nread >= READ_BUFFER_BYTES / 4) return true;
      setTimeout(() => socket.resume(), COALESCE_MS);
      return false;
    }
    const waits = drained(blocked);
    blocked.clear();
    waits.then(
      () => socket.resume(),
      (error: Error) => socket.destroy(error),
    );
    return false;
  };

  return new Promise<RawAttachment | null>((resolveAttach, rejectAttach) => {
    const onRead = (nread: number, buffer: Buffer): boolean => {
      if (answer.streaming) {
        frames.feed(buffer, 0, nread, emit);
        return readOn(nread);
      }
      const start = answer.take(buffer, nread);
      if (start === 'failed') {
        socket.destroy();
        rejectAttach(answer.error());
        return false;
      }
      if (start === 'more') return true;
      resolveAttach({ socket, done, written: frames.written });
      frames.feed(buffer, start, nread, emit);
      return readOn(nread);
    };
    socket = connect({
      ...where,
      onread: { buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES), callback: onRead },
    });
    socket.setNoDelay(true);
    socket.write(request);
    socket.on('error', (error) => {
      rejectAttach(error);
      settle?.reject(error);
    });
    socket.on('end', () => {
      if (!answer.streaming) {
        rejectAttach(answer.error());
        return;
      }
      const error = frames.endError();
      if (error) settle?.reject(error);
      else settle?.resolve();
    });
    socket.on('close', () => {
      const gone = new Error(`the output connection to container ${containerId} closed before its end`);
      rejectAttach(gone);
      settle?.reject(gone); // no effect after 'end' settled it
    });
    // Flowing mode, so 'end' is emitted (reads go to onread, never to 'data').
    socket.resume();
  });
}
