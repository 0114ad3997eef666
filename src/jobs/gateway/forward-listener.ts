import { type AddressInfo, createServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { coerceError } from '../errors.js';

export interface ForwardListenerOptions {
  /** Default 127.0.0.1: a forward is a way into a job, so it listens on loopback unless told otherwise. */
  host?: string;
  /** 0: any free port. */
  port: number;
  /** Opens the job's side of one connection. */
  open: () => Promise<Duplex>;
  /** A connection whose job side did not open, or broke: the local connection is closed. */
  onError?: (error: Error, client: string) => void;
  /** A connection joined, and when it ended: bytes each way. */
  onConnection?: (event: ForwardEvent) => void;
}

export type ForwardEvent =
  | { kind: 'open'; client: string }
  | { kind: 'close'; client: string; bytes: { toJob: number; fromJob: number } };

export interface ForwardListener {
  readonly address: AddressInfo;
  /** Connections open now. */
  readonly open: number;
  /** Stops listening and ends every connection. */
  close(): Promise<void>;
}

/**
 * A local TCP listener whose every connection becomes one forwarded connection into a job.
 * Connections run at once, each on its own gateway session; one that fails is closed alone.
 */
export async function listenForward(options: ForwardListenerOptions): Promise<ForwardListener> {
  const live = new Set<Socket>();
  const server = createServer({ pauseOnConnect: true }, (local) => {
    const client = `${local.remoteAddress ?? '?'}:${local.remotePort ?? '?'}`;
    live.add(local);
    local.on('error', (error) => options.onError?.(error, client));
    local.on('close', () => live.delete(local));
    join(local, client, options);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(
        new Error(
          `port-forward: cannot listen on ${options.host ?? '127.0.0.1'}:${options.port}: ${error.message}; choose another local port`,
          { cause: error },
        ),
      ),
    );
    server.listen(options.port, options.host ?? '127.0.0.1', () => resolve());
  });
  server.on('error', (error) => options.onError?.(error, 'listener'));
  return {
    address: server.address() as AddressInfo,
    get open() {
      return live.size;
    },
    close: async () => {
      for (const socket of live) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function join(local: Socket, client: string, options: ForwardListenerOptions): void {
  options
    .open()
    .then((remote) => {
      if (local.destroyed) {
        remote.destroy();
        return;
      }
      options.onConnection?.({ kind: 'open', client });
      const bytes = { toJob: 0, fromJob: 0 };
      remote.on('error', (error) => {
        options.onError?.(error, client);
        local.destroy();
      });
      local.on('data', (chunk: Buffer) => {
        bytes.toJob += chunk.length;
      });
      remote.on('data', (chunk: Buffer) => {
        bytes.fromJob += chunk.length;
      });
      // pipe() keeps each direction's backpressure, and passes a half-close (end) through.
      local.pipe(remote);
      remote.pipe(local);
      let closed = false;
      const done = () => {
        if (closed) return;
        closed = true;
        local.destroy();
        remote.destroy();
        options.onConnection?.({ kind: 'close', client, bytes });
      };
      // Once both directions have ended (or either side broke), the connection is over.
      let ends = 0;
      const ended = () => {
        ends += 1;
        if (ends === 2) done();
      };
      local.once('end', ended);
      remote.once('end', ended);
      local.once('close', done);
      remote.once('close', done);
    })
    .catch((error: unknown) => {
      options.onError?.(coerceError(error), client);
      local.destroy();
    });
}
