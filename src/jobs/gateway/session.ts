import type { KeyObject } from 'node:crypto';
import { connect as connectTcp, type Socket } from 'node:net';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { type ConnectionOptions, connect as connectTls } from 'node:tls';
import { FramedSocket } from './framed-socket.js';
import { FRAME, type Frame, parseJsonPayload } from './frames.js';
import {
  clientProof,
  type ExecRequest,
  type GatewayRequest,
  type Hello,
  proofMatches,
  randomToken,
  signRequest,
  workerProof,
} from './handshake.js';
import type { Keepalive } from './keepalive.js';
import { parseChallenge, parseExit, parseRefusal } from './messages.js';
import type { GatewayEntry } from './registration.js';
import { tlsProblem } from './tls-problem.js';

/** A gateway session that did not open, or ended without saying how: the message says which and why. */
export class GatewayError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'GatewayError';
  }
}

export interface SessionOptions {
  /** Signs each request (needed when the worker trusts keys: STEVEDORE_TRUSTED_KEYS). */
  signingKey?: { id: string; privateKey: KeyObject };
  /** TLS options for a worker that serves the gateway with a certificate (its CA, at least). */
  tls?: ConnectionOptions;
  /** Pings and the silent-peer limit (default: 10 s and 35 s). */
  keepalive?: Keepalive;
}

const CONNECT_MS = 10_000;

/** Opens a connection to the job's worker and runs the handshake; resolves once the session is open. */
async function open(
  entry: GatewayEntry,
  jobId: string,
  request: GatewayRequest,
  options: SessionOptions,
  onFrame: (frame: Frame) => void,
  onClose: (error: Error | null) => void,
): Promise<FramedSocket> {
  const where = `${entry.host}:${entry.port}`;
  const socket: Socket =
    entry.tls || options.tls
      ? connectTls({ host: entry.host, port: entry.port, ...options.tls })
      : connectTcp({ host: entry.host, port: entry.port });
  const hello: Hello = { v: 1, jobId, attempt: entry.attempt, op: request.op, clientNonce: randomToken() };
  return new Promise<FramedSocket>((resolve, reject) => {
    let state: 'challenge' | 'ready' | 'open' = 'challenge';
    const fail = (error: GatewayError) => {
      if (state === 'open') return;
      state = 'open';
      clearTimeout(deadline);
      connection.close(null);
      reject(error);
    };
    // A timer, not the socket's idle timeout: pings are traffic, and a worker that answers them
    // but never the handshake would keep an idle timeout from ever firing.
    const deadline = setTimeout(
      () =>
        fail(
          new GatewayError(
            `gateway ${where} of job ${jobId} did not open a session within ${CONNECT_MS / 1000} s`,
            'no-connection',
          ),
        ),
      CONNECT_MS,
    );
    const connection = new FramedSocket(socket, {
      stopAfter: request.op === 'forward' ? FRAME.ready : undefined,
      keepalive: options.keepalive,
      onFrame: (frame) => {
        if (state === 'open') return onFrame(frame);
        try {
          if (frame.type === FRAME.refused) {
            const refusal = parseRefusal(parseJsonPayload(frame, 'refusal'));
            // 'error': the worker failed at the session, rather than refusing it.
            const how = refusal.code === 'error' ? 'failed' : 'refused';
            return fail(new GatewayError(`gateway of job ${jobId} ${how}: ${refusal.message}`, refusal.code));
          }
          if (state === 'challenge' && frame.type === FRAME.challenge) {
            const challenge = parseChallenge(parseJsonPayload(frame, 'challenge'));
            if (!proofMatches(challengeProof(entry, hello, challenge.serverNonce), challenge.proof)) {
              return fail(
                new GatewayError(
                  `${where} does not know the secret of job ${jobId}'s attempt ${entry.attempt}: it is not that job's gateway (a wrong port, or a stale registration)`,
                  'bad-secret',
                ),
              );
            }
            const signature = options.signingKey
              ? signRequest(hello, challenge.serverNonce, request, options.signingKey)
              : undefined;
            const proof = clientProof(entry.secret, hello, challenge.serverNonce, request);
            connection.sendJson(FRAME.auth, { request, proof, ...(signature ? { signature } : {}) });
            state = 'ready';
            return;
          }
          if (state === 'ready' && frame.type === FRAME.ready) {
            state = 'open';
            clearTimeout(deadline);
            return resolve(connection);
          }
          fail(
            new GatewayError(
              `gateway ${where} sent an unexpected frame 0x${frame.type.toString(16)}`,
              'protocol',
            ),
          );
        } catch (error) {
          fail(
            new GatewayError(
              `gateway ${where}: ${error instanceof Error ? error.message : String(error)}`,
              'protocol',
            ),
          );
        }
      },
      onClose: (error) => {
        if (state !== 'open') {
          const certificate = error ? tlsProblem(error, entry.host) : null;
          if (certificate) {
            return fail(
              new GatewayError(
                `gateway ${where} of job ${jobId} did not open a session: ${certificate}`,
                'tls',
              ),
            );
          }
          const why = error ? error.message : 'it closed the connection';
          return fail(
            new GatewayError(
              `gateway ${where} of job ${jobId} did not open a session: ${why}`,
              'no-connection',
            ),
          );
        }
        onClose(error);
      },
    });
    socket.once(entry.tls || options.tls ? 'secureConnect' : 'connect', () =>
      connection.sendJson(FRAME.hello, hello),
    );
  });
}

/** The worker's proof, computed here to compare with what the worker sent. */
const challengeProof = (entry: GatewayEntry, hello: Hello, serverNonce: string) =>
  workerProof(entry.secret, hello, serverNonce);

export interface ExecSession {
  /** The command's stdin: end it to send end of file. */
  stdin: Writable;
  stdout: Readable;
  /** Empty with a tty (the terminal merges both streams into stdout). */
  stderr: Readable;
  resize(size: { cols: number; rows: number }): void;
  /** The exit code; rejects with GatewayError when the session ended without one, saying why. */
  exitCode: Promise<number>;
}

/** Runs a command in a running job's container through its worker's gateway. */
export async function openExec(
  entry: GatewayEntry,
  jobId: string,
  request: ExecRequest,
  options: SessionOptions = {},
): Promise<ExecSession> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let settle: { resolve: (code: number) => void; reject: (error: Error) => void } | undefined;
  const exitCode = new Promise<number>((resolve, reject) => {
    settle = { resolve, reject };
  });
  exitCode.catch(() => undefined); // the caller reads it; an early failure must not be unhandled meanwhile
  let ended = false;
  const finish = (outcome: number | GatewayError) => {
    if (ended) return;
    ended = true;
    stdout.end();
    stderr.end();
    if (typeof outcome === 'number') settle?.resolve(outcome);
    else settle?.reject(outcome);
  };
  const connection = await open(
    entry,
    jobId,
    request,
    options,
    (frame) => {
      // The exit frame is the last: anything after it (a broken worker) would be a write after
      // end(), an 'error' on a stream the caller may not listen to.
      if (ended) return;
      if (frame.type === FRAME.stdout) stdout.write(frame.payload);
      else if (frame.type === FRAME.stderr) stderr.write(frame.payload);
      else if (frame.type === FRAME.exit) {
        try {
          const exit = parseExit(parseJsonPayload(frame, 'exit'));
          finish(exit.exitCode ?? new GatewayError(exit.message, exit.reason));
        } catch (error) {
          finish(new GatewayError(error instanceof Error ? error.message : String(error), 'protocol'));
        }
      }
    },
    (error) =>
      finish(
        new GatewayError(
          `the session with job ${jobId}'s gateway ended without an exit code: ${error ? error.message : 'the worker closed the connection'} (the worker may have stopped; the command's fate is unknown)`,
          'lost',
        ),
      ),
  );
  const stdin = new PassThrough();
  stdin.on('data', (chunk: Buffer) => {
    if (!connection.send(FRAME.stdin, chunk)) {
      stdin.pause();
      connection.socket.once('drain', () => stdin.resume());
    }
  });
  stdin.on('end', () => connection.send(FRAME.stdinEnd));
  return {
    stdin,
    stdout,
    stderr,
    resize: (size) => {
      connection.sendJson(FRAME.resize, size);
    },
    exitCode,
  };
}

/**
 * Opens one forwarded connection to `port` inside a running job; the socket carries its bytes.
 * It comes paused: pipe it, or resume() it after adding a 'data' listener.
 */
export async function openForward(
  entry: GatewayEntry,
  jobId: string,
  port: number,
  options: SessionOptions = {},
): Promise<Socket> {
  const connection = await open(
    entry,
    jobId,
    { op: 'forward', port },
    options,
    () => undefined,
    () => undefined,
  );
  const early = connection.goRaw();
  if (early.length > 0) connection.socket.unshift(early);
  return connection.socket;
}
