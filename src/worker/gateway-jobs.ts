import type { KeyObject } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { ExecStream, ExecStreamRequest } from '../executors/executor.js';
import type { RedisConnection } from '../jobs/connection.js';
import { coerceError } from '../jobs/errors.js';
import { randomToken } from '../jobs/gateway/handshake.js';
import type { Keepalive } from '../jobs/gateway/keepalive.js';
import { readGateway, registerGateway, unregisterGateway } from '../jobs/gateway/registration.js';
import type { QueueAddress } from '../jobs/keys.js';
import type { GatewayPolicy } from '../policy/policy.js';

/**
 * The worker's side of the exec gateway (issue #24): which jobs run here with which attempt's
 * secret, their registration in Redis, and the audit of every session into the job's events.log
 * and the worker log. The gateway server (src/gateway) is handed this and nothing else of the worker.
 */

export type { ExecStream };

/** What a session needs of a running job's container (the executor's GatewayTarget). */
export interface GatewaySessionTarget {
  execStream(request: ExecStreamRequest): Promise<ExecStream>;
  /** The container's address on its network; rejects when it has none. */
  ipAddress(): Promise<string>;
  /** 0 once the container runs no process: an exec that ended then ended with the job. */
  pid(): Promise<number>;
}

/** A job running on this worker, as its gateway sessions see it. */
export interface GatewayJob {
  jobId: string;
  attempt: number;
  /** This attempt's secret, as registered in Redis beside the job's gateway entry. Never logged. */
  secret: string;
  target: GatewaySessionTarget;
  /** Whether the job has a network a forward can reach (without one, its loopback is its own). */
  networkEnabled: boolean;
  /** Aborted when the job's run ends (its reason, a string, says how): open sessions are told and closed. */
  ended: AbortSignal;
}

/** One exec or forward as it opens: who asked what. stdin content and env values never appear. */
export interface AuditStart {
  jobId: string;
  attempt: number;
  /** `key:<id>` when the request was signed, else `address:<client address>`. */
  who: string;
  /** The client's address and port, also when the request was signed. */
  client: string;
  op: 'exec' | 'forward';
  /** The command, or the port forwarded to. */
  what: string[] | number;
  /** exec: the user asked for, the terminal, the names (only) of the variables set. */
  user?: string;
  tty?: boolean;
  envNames?: string[];
  startedAt: string;
}

/** The same when the session has ended. */
export interface AuditRecord extends AuditStart {
  endedAt: string;
  /** exec: the exit code, or null with why in `end`. */
  exitCode?: number | null;
  /** forward: bytes each way. */
  bytes?: { toJob: number; fromJob: number };
  /** How the session ended, when not with an exit code. */
  end?: string;
}

/** Writes one line into the job's events.log. */
export type EventWriter = (event: string, details: Record<string, unknown>) => void;

/** What an ended job waits for its sessions' last audit lines, before its events.log closes. */
const SESSIONS_END_MS = 5_000;

interface Registered {
  job: GatewayJob;
  end: AbortController;
  write: EventWriter;
  log: Logger;
  open: number;
  idle: (() => void)[];
  refresh: NodeJS.Timeout;
  /** Whether the last write took: the worker log says when it changes, not at each refresh. */
  written: boolean | null;
}

export interface JobGatewaysOptions {
  redis: RedisConnection;
  address: QueueAddress;
  workerId: string;
  /** The address clients dial, and whether it is TLS. */
  advertise: { host: string; port: number; tls: boolean };
  /** The entry lives this long unrefreshed: the job's lock duration, so it lapses with the lock. */
  ttlMs: number;
  logger: Logger;
}

/** The gateways of this worker's running jobs. */
export class JobGateways {
  private readonly jobs = new Map<string, Registered>();
  /** Every registration by its job, also while it closes (its sessions' last lines still go to its events.log). */
  private readonly byJob = new WeakMap<GatewayJob, Registered>();

  constructor(private readonly options: JobGatewaysOptions) {}

  /**
   * The job's container runs: a fresh secret for this attempt, registered in Redis and refreshed
   * while it runs (it lapses with the lock when this worker dies). `close()` ends its sessions,
   * waits for their audit lines, and removes the entry.
   */
  async open(
    job: Omit<GatewayJob, 'secret' | 'ended'>,
    write: EventWriter,
    log: Logger,
  ): Promise<{ close(why: string): Promise<void> }> {
    const end = new AbortController();
    const registered: Registered = {
      job: { ...job, secret: randomToken(), ended: end.signal },
      end,
      write,
      log,
      open: 0,
      idle: [],
      written: null,
      refresh: setInterval(() => void this.register(registered), this.options.ttlMs / 3),
    };
    registered.refresh.unref();
    this.jobs.set(job.jobId, registered);
    this.byJob.set(registered.job, registered);
    await this.register(registered);
    return { close: (why) => this.close(registered, why) };
  }

  /** Writes (or refreshes) the entry; another worker's entry (a dead one's, until it lapses) is tried again later. */
  private async register(registered: Registered): Promise<void> {
    const { job } = registered;
    const { advertise, workerId } = this.options;
    try {
      const written = await registerGateway(
        this.options.redis,
        this.options.address,
        job.jobId,
        { ...advertise, attempt: job.attempt, workerId, secret: job.secret },
        this.options.ttlMs,
      );
      if (written === registered.written) return;
      registered.written = written;
      if (written)
        registered.log.info({ gateway: `${advertise.host}:${advertise.port}` }, 'gateway registered');
      else
        registered.log.info(
          "gateway not registered: the job's entry is another worker's or a later attempt's; tried again until it lapses with that worker's lock",
        );
    } catch (error) {
      registered.log.warn({ err: error }, 'gateway registration failed; tried again shortly');
    }
  }

  private async close(registered: Registered, why: string): Promise<void> {
    const { job } = registered;
    if (this.jobs.get(job.jobId) === registered) this.jobs.delete(job.jobId);
    clearInterval(registered.refresh);
    registered.end.abort(why);
    await unregisterGateway(this.options.redis, this.options.address, job.jobId, {
      workerId: this.options.workerId,
      attempt: job.attempt,
    }).catch((error: unknown) =>
      registered.log.warn({ err: error }, 'gateway entry not removed; it lapses with its time to live'),
    );
    if (registered.open === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, SESSIONS_END_MS);
      registered.idle.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** The job if it runs here now (any attempt: the gateway tells a wrong attempt apart). */
  find(jobId: string): GatewayJob | undefined {
    return this.jobs.get(jobId)?.job;
  }

  /** What Redis says of the job's gateway (for a refusal that says where it went). */
  async registration(jobId: string): Promise<{ attempt: number; workerId: string } | null> {
    const entry = await readGateway(this.options.redis, this.options.address, jobId).catch(
      (error: unknown) => {
        throw new Error(`reading job ${jobId}'s gateway entry in Redis: ${coerceError(error).message}`, {
          cause: error,
        });
      },
    );
    if (!entry || entry.workerId === this.options.workerId) return null;
    return { attempt: entry.attempt, workerId: entry.workerId };
  }

  /** A session opened: a line in the job's events.log and the worker log; the job's end waits for its close. */
  started(job: GatewayJob, record: AuditStart): void {
    const registered = this.byJob.get(job);
    if (registered) registered.open += 1;
    registered?.write(`gateway-${record.op}-start`, { ...record });
    this.logOf(registered, record).info({ gateway: record }, `gateway ${record.op} started`);
  }

  /** A session ended: its line, with the exit code or the bytes moved. */
  ended(job: GatewayJob, record: AuditRecord): void {
    const registered = this.byJob.get(job);
    registered?.write(`gateway-${record.op}`, { ...record });
    this.logOf(registered, record).info({ gateway: record }, `gateway ${record.op} ended`);
    if (!registered) return;
    registered.open -= 1;
    if (registered.open === 0) for (const resolve of registered.idle.splice(0)) resolve();
  }

  private logOf(registered: Registered | undefined, record: AuditStart): Logger {
    return registered?.log ?? this.options.logger.child({ jobId: record.jobId, attempt: record.attempt });
  }
}

/** What the worker hands the gateway server it starts (src/gateway/server.ts takes this). */
export interface GatewayServeOptions {
  listen: { host: string; port: number };
  /** PEM key and certificate: sessions are TLS when given. */
  tls?: { key: Buffer; cert: Buffer };
  jobs: Pick<JobGateways, 'find' | 'registration'>;
  policy: GatewayPolicy;
  /** Set when requests must be signed (STEVEDORE_TRUSTED_KEYS). */
  trustedKey?: (keyId: string) => Promise<KeyObject | undefined>;
  audit: Pick<JobGateways, 'started' | 'ended'>;
  logger: Logger;
  /** Pings and the silent-peer limit (STEVEDORE_GATEWAY_PING_MS, STEVEDORE_GATEWAY_PEER_TIMEOUT_MS). */
  keepalive: Keepalive;
}

/** Starts the gateway server: the worker is given one (the CLI passes src/gateway's), never imports it. */
export type GatewayServe = (
  options: GatewayServeOptions,
) => Promise<{ readonly address: AddressInfo; close(): Promise<void> }>;
