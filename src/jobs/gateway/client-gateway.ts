import type { KeyObject } from 'node:crypto';
import type { Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import { ValidationError } from '../errors.js';
import type { JobStatus } from '../status.js';
import { type ForwardListener, type ForwardListenerOptions, listenForward } from './forward-listener.js';
import type { ExecCommand, ExecRequest } from './handshake.js';
import type { Keepalive } from './keepalive.js';
import { STALE_ENTRY_CODES, whyNoGateway } from './reach.js';
import type { GatewayEntry } from './registration.js';
import { type ExecSession, GatewayError, openExec, openForward, type SessionOptions } from './session.js';

/** What `exec()` runs: the command's user, working directory, variables, stdin and terminal. */
export type JobExecOptions = Omit<ExecCommand, 'command' | 'stdin'> & {
  /** Keep stdin open and send it (`-i`); default false: the command reads end of file at once. */
  stdin?: boolean;
};

/** One port inside a running job, reachable from here: a connection per `connect()`, or a local listener. */
export interface PortForward {
  readonly jobId: string;
  readonly remotePort: number;
  /** Opens one forwarded connection: its bytes are the job's port's. Each is its own gateway session. */
  connect(): Promise<Socket>;
  /** Listens on a local port (127.0.0.1 by default) and forwards each connection to the job's port. */
  listen(options: Omit<ForwardListenerOptions, 'open'>): Promise<ForwardListener>;
}

/** What the client's gateway calls need of Redis: the job's entry, its status, and whether it has a network. */
export interface GatewayLookups {
  entry(jobId: string): Promise<GatewayEntry | null>;
  /** Throws UnknownJobError for an unknown id. */
  status(jobId: string): Promise<JobStatus>;
  /** network.enabled of the job's spec; null when the job data is gone. */
  networkEnabled(jobId: string): Promise<boolean | null>;
}

export interface ClientGatewayOptions {
  signingKey?: { id: string; privateKey: KeyObject };
  /** TLS options (a CA, say) for workers that serve the gateway with a certificate. */
  tls?: ConnectionOptions;
  keepalive?: Keepalive;
}

/**
 * exec and port-forward as a producer's client does them: find the job's gateway in Redis (or
 * say why it has none), open the session, and read the entry again once when it was stale.
 */
export class ClientGateway {
  constructor(
    private readonly lookups: GatewayLookups,
    private readonly options: ClientGatewayOptions = {},
  ) {}

  async exec(jobId: string, command: string[], options: JobExecOptions = {}): Promise<ExecSession> {
    if (!Array.isArray(command) || command.length === 0 || command.some((a) => typeof a !== 'string')) {
      throw new ValidationError('exec: command must be a non-empty array of strings (the program first)');
    }
    const { stdin = false, user, workdir, env, tty } = options;
    // Absent fields stay absent: the request is signed and proved as canonical JSON, which has no undefined.
    const request: ExecRequest = {
      op: 'exec',
      command,
      stdin,
      ...(user !== undefined ? { user } : {}),
      ...(workdir !== undefined ? { workdir } : {}),
      ...(env !== undefined ? { env } : {}),
      ...(tty !== undefined ? { tty } : {}),
    };
    return this.withEntry(jobId, (entry, session) => openExec(entry, jobId, request, session));
  }

  async portForward(jobId: string, remotePort: number): Promise<PortForward> {
    if (!Number.isInteger(remotePort) || remotePort < 1 || remotePort > 65_535) {
      throw new ValidationError(`portForward: port ${remotePort} is not a TCP port (1–65535)`);
    }
    await this.entryOf(jobId);
    if ((await this.lookups.networkEnabled(jobId)) === false) {
      throw new GatewayError(
        `job ${jobId} has no network: its loopback is its own and nothing outside can reach it; submit it with network.enabled (--network) to forward to it`,
        'no-network',
      );
    }
    const connect = () =>
      this.withEntry(jobId, (entry, session) => openForward(entry, jobId, remotePort, session));
    return {
      jobId,
      remotePort,
      connect,
      listen: (options) => listenForward({ ...options, open: connect }),
    };
  }

  /** The job's gateway entry, or the GatewayError that says why it has none. */
  private async entryOf(jobId: string): Promise<GatewayEntry> {
    const entry = await this.lookups.entry(jobId);
    if (entry) return entry;
    throw whyNoGateway(jobId, await this.lookups.status(jobId));
  }

  private async withEntry<T>(
    jobId: string,
    open: (entry: GatewayEntry, session: SessionOptions) => Promise<T>,
  ): Promise<T> {
    const entry = await this.entryOf(jobId);
    try {
      return await open(entry, this.sessionOptions(entry));
    } catch (error) {
      if (error instanceof GatewayError && error.code === 'no-connection') throw unreachable(error, entry);
      if (!(error instanceof GatewayError) || !STALE_ENTRY_CODES.has(error.code)) throw error;
      // The job moved or started another attempt since the entry was read: one more look.
      const fresh = await this.entryOf(jobId);
      if (sameEntry(fresh, entry)) throw error;
      return open(fresh, this.sessionOptions(fresh));
    }
  }

  private sessionOptions(entry: GatewayEntry): SessionOptions {
    return {
      signingKey: this.options.signingKey,
      // TLS options only for a worker that serves TLS: a plain worker is reached in plain TCP.
      tls: entry.tls ? (this.options.tls ?? {}) : undefined,
      keepalive: this.options.keepalive,
    };
  }
}

const sameEntry = (a: GatewayEntry, b: GatewayEntry): boolean =>
  a.host === b.host &&
  a.port === b.port &&
  a.attempt === b.attempt &&
  a.workerId === b.workerId &&
  a.secret === b.secret;

/** A gateway that did not answer: say which worker, and what usually causes it. */
const unreachable = (error: GatewayError, entry: GatewayEntry): GatewayError =>
  new GatewayError(
    `${error.message} (worker ${entry.workerId}: check that it runs and that ${entry.host}:${entry.port}, its STEVEDORE_GATEWAY or STEVEDORE_GATEWAY_ADVERTISE address, is reachable from this host${entry.tls ? ' and that its certificate is trusted here (STEVEDORE_GATEWAY_TLS_CA)' : ''})`,
    'no-connection',
  );
