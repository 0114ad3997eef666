import type { KeyObject } from 'node:crypto';
import { type AddressInfo, createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { Logger } from 'pino';
import { FramedSocket } from '../jobs/gateway/framed-socket.js';
import { FRAME, type Frame, parseJsonPayload } from '../jobs/gateway/frames.js';
import type { Exit, Hello, Refusal } from '../jobs/gateway/handshake.js';
import type { Keepalive } from '../jobs/gateway/keepalive.js';
import { parseHello } from '../jobs/gateway/messages.js';
import { authenticate, type GatewayPolicy } from './authenticate.js';
import { runExecSession } from './exec-session.js';
import { type ForwardEnd, runForwardSession } from './forward-session.js';
import { type SessionState, tellFailure } from './session-failure.js';
import type { AuditRecord, AuditStart, GatewayJob } from './target.js';

/** A client that connected and says nothing is not one: it gets this long for each handshake step. */
const HANDSHAKE_MS = 10_000;

export interface GatewayJobs {
  /** The job if it runs on this worker now. */
  find(jobId: string): GatewayJob | undefined;
  /** What Redis says of the job's gateway, for a refusal that says where the job went. */
  registration(jobId: string): Promise<{ attempt: number; workerId: string } | null>;
}

export interface GatewayAudit {
  started(job: GatewayJob, record: AuditStart): void;
  ended(job: GatewayJob, record: AuditRecord): void;
}

export interface GatewayServerOptions {
  listen: { host: string; port: number };
  /** PEM key and certificate: sessions are TLS when given. */
  tls?: { key: string | Buffer; cert: string | Buffer };
  jobs: GatewayJobs;
  policy: GatewayPolicy;
  /** When set, every request must be signed by a key it knows (STEVEDORE_TRUSTED_KEYS). */
  trustedKey?: (keyId: string) => KeyObject | undefined | Promise<KeyObject | undefined>;
  /** Told when a session opens and when it ends (the job's events.log and the worker log). */
  audit: GatewayAudit;
  logger: Logger;
  /** Pings and the silent-peer limit (STEVEDORE_GATEWAY_PING_MS, _PEER_TIMEOUT_MS; default 10 s and 35 s). */
  keepalive?: Keepalive;
}

export interface GatewayServer {
  readonly address: AddressInfo;
  /** Stops listening and ends every open session. */
  close(): Promise<void>;
}

/** Serves exec and port-forward sessions into this worker's running jobs. */
export async function startGatewayServer(options: GatewayServerOptions): Promise<GatewayServer> {
  const open = new Set<FramedSocket>();
  const onSocket = (socket: Socket) => {
    // A reset or TLS failure before the handshake must not end the worker.
    socket.on('error', (error) => options.logger.debug({ err: error }, 'gateway: connection failed'));
    // serve() tells its client of its own failures; only a failure to do even that comes here,
    // and the connection is cut rather than left open.
    serve(socket, options, open).catch((error: unknown) => {
      options.logger.error({ err: error }, 'gateway: session failed, and its client could not be told');
      socket.destroy();
    });
  };
  const server: Server = options.tls
    ? createTlsServer({ key: options.tls.key, cert: options.tls.cert }, onSocket)
    : createTcpServer(onSocket);
  if (options.tls) {
    server.on('tlsClientError', (error) =>
      options.logger.debug({ err: error }, 'gateway: TLS handshake failed'),
    );
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(
        new Error(
          `gateway: cannot listen on ${options.listen.host}:${options.listen.port}: ${error.message}; choose another address or port`,
          { cause: error },
        ),
      ),
    );
    server.listen(options.listen.port, options.listen.host, resolve);
  });
  server.on('error', (error) => options.logger.warn({ err: error }, 'gateway: server error'));
  const address = server.address() as AddressInfo;
  options.logger.info(
    { gateway: `${address.address}:${address.port}`, tls: Boolean(options.tls) },
    'gateway listening',
  );
  return {
    address,
    close: async () => {
      for (const session of open) session.close(null);
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Reads the next frame, or null when the peer went away or took too long. */
function nextFrame(
  setOnFrame: (f: (frame: Frame) => void) => void,
  closed: Promise<unknown>,
): Promise<Frame | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), HANDSHAKE_MS);
    setOnFrame((frame) => {
      clearTimeout(timer);
      resolve(frame);
    });
    void closed.then(() => {
      clearTimeout(timer);
      resolve(null);
    });
  });
}

async function serve(socket: Socket, options: GatewayServerOptions, open: Set<FramedSocket>): Promise<void> {
  let onFrame: (frame: Frame) => void = () => undefined;
  const setOnFrame = (f: (frame: Frame) => void) => {
    onFrame = f;
  };
  const closedBy: { error: Error | null } = { error: null };
  let markClosed: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => {
    markClosed = resolve;
  });
  const connection = new FramedSocket(socket, {
    onFrame: (frame) => onFrame(frame),
    onClose: (error) => {
      closedBy.error = error;
      open.delete(connection);
      markClosed();
    },
    keepalive: options.keepalive,
  });
  open.add(connection);
  const client = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
  const state: SessionState = { phase: 'reading the hello', opened: false };
  let hello: Hello | undefined;
  // Whatever throws in a step is the worker's failure, not the client's: the client is told what
  // failed and in which phase (never left waiting on a connection kept up by pings), and it is logged.
  const failed = (error: unknown): string => {
    options.logger.error(
      { err: error, jobId: hello?.jobId, attempt: hello?.attempt, client, phase: state.phase },
      'gateway: session failed',
    );
    return tellFailure(connection, state, error);
  };
  try {
    await session();
  } catch (error) {
    failed(error);
  }

  async function session(): Promise<void> {
    const refuse = (refusal: Refusal) => {
      options.logger.info(
        { jobId: hello?.jobId, client, refusal: refusal.code },
        `gateway: refused: ${refusal.message}`,
      );
      connection.sendJson(FRAME.refused, refusal);
      connection.end();
    };

    const helloFrame = await nextFrame(setOnFrame, closed);
    if (!helloFrame) return connection.close(null);
    try {
      if (helloFrame.type !== FRAME.hello) throw new Error('the first frame must be a hello');
      hello = parseHello(parseJsonPayload(helloFrame, 'hello'));
    } catch (error) {
      return refuse({ code: 'bad-request', message: error instanceof Error ? error.message : String(error) });
    }
    state.phase = 'authenticating the request';
    const verdict = await authenticate(hello, connection, options, () => nextFrame(setOnFrame, closed));
    if ('refusal' in verdict) return refuse(verdict.refusal);
    const { job, auth, who } = verdict;
    const request = auth.request;
    const started: AuditStart = {
      jobId: job.jobId,
      attempt: job.attempt,
      who,
      client,
      op: request.op,
      what: request.op === 'exec' ? request.command : request.port,
      ...(request.op === 'exec'
        ? {
            ...(request.user !== undefined ? { user: request.user } : {}),
            tty: request.tty !== undefined,
            // Names only: a value may be a credential.
            ...(request.env ? { envNames: Object.keys(request.env) } : {}),
          }
        : {}),
      startedAt: new Date().toISOString(),
    };
    if (request.op === 'exec') {
      // Ready first: once the audit says an exec started, its client knows it did.
      connection.sendJson(FRAME.ready, {});
      state.opened = true;
      state.phase = 'auditing the start';
      options.audit.started(job, started);
      state.phase = 'running the exec';
      const exit = await runExecSession(job, request, connection, setOnFrame, closed).catch(
        (error: unknown): Exit => ({ exitCode: null, reason: 'error', message: failed(error) }),
      );
      const end = closedBy.error
        ? `client went away: ${closedBy.error.message}`
        : exit.exitCode === null
          ? exit.message
          : undefined;
      state.phase = 'auditing the end';
      options.audit.ended(job, {
        ...started,
        endedAt: new Date().toISOString(),
        exitCode: exit.exitCode,
        ...(end ? { end } : {}),
      });
      return;
    }
    state.phase = 'auditing the start';
    options.audit.started(job, started);
    state.phase = 'forwarding';
    const forward = await runForwardSession(job, request.port, connection).catch(
      (error: unknown): ForwardEnd => ({ bytes: { toJob: 0, fromJob: 0 }, end: failed(error) }),
    );
    state.phase = 'auditing the end';
    options.audit.ended(job, {
      ...started,
      endedAt: new Date().toISOString(),
      bytes: forward.bytes,
      ...(forward.end ? { end: forward.end } : {}),
    });
  }
}
