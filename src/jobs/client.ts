import type { KeyObject } from 'node:crypto';
import type { ConnectionOptions } from 'node:tls';
import { Queue } from 'bullmq';
import { type CancelOutcome, cancelJob } from './cancellation.js';
import {
  connect,
  isClusterTarget,
  type RedisConnection,
  type RedisTarget,
  type RedisTls,
} from './connection.js';
import { ValidationError } from './errors.js';
import { ClientGateway, type JobExecOptions, type PortForward } from './gateway/client-gateway.js';
import { type Keepalive, resolveKeepalive } from './gateway/keepalive.js';
import { queueGatewayLookups } from './gateway/lookups.js';
import type { ExecSession } from './gateway/session.js';
import { JobReader } from './job-reader.js';
import {
  clusterPrefixProblem,
  DEFAULT_PREFIX,
  DEFAULT_QUEUE,
  type OutputStream,
  type QueueAddress,
} from './keys.js';
import type { JobProgress } from './progress.js';
import { queueDeadlineOf } from './queue-timeout.js';
import { type Durability, durabilityProblem } from './replicas.js';
import type { JobResult } from './result.js';
import { ResultWaiter } from './result-waiter.js';
import { type SigningKey, toPrivateKey } from './signing.js';
import type { JobSpecInput } from './spec.js';
import type { JobStatus } from './status.js';
import { type SubmitOptions, submitJob } from './submission.js';

export interface ClientOptions {
  /**
   * A URL, ioredis options, `{ sentinels, name }` (Redis Sentinel: `SentinelTarget`), `{ clusterNodes }`
   * (Redis Cluster, which needs a hash-tagged `prefix` such as `{stevedore}`), or a connection of yours.
   */
  redis: RedisTarget;
  /** CA, client certificate and key (PEM) for a `rediss://` URL or options; ignored for a connected instance. */
  tls?: RedisTls;
  queue?: string;
  prefix?: string;
  /** Called on Redis connection errors (the client reconnects by itself); default: ignore. */
  onError?: (error: Error) => void;
  /** Signs every submitted job (docs/signed-jobs.md), for workers that trust only signed jobs. */
  signingKey?: SigningKey;
  /** getStatus: a worker not seen for this long counts as gone (default 30 s, DEFAULT_PRESENCE_STALE_MS). */
  workerStaleMs?: number;
  /**
   * submit waits until this many replicas hold the new job (Redis `WAIT`), and throws a
   * ReplicationError when they do not in time; absent: submit returns once the master has it.
   */
  durability?: Durability;
  /**
   * exec and portForward: TLS options (at least `ca`) for workers that serve the gateway with a
   * certificate (docs/gateway.md); used only for workers whose entry says TLS.
   */
  gatewayTls?: ConnectionOptions;
  /**
   * exec and portForward: how often a quiet session is pinged, and how long a silent worker is
   * given before the session counts as lost (default 10 s and 3 pings + 5 s; docs/gateway.md).
   */
  gatewayKeepalive?: Partial<Keepalive>;
}

/**
 * Submits container jobs and reads their results, from any process. Each part is in a file of
 * its own: submission.ts, job-reader.ts (results, progress, status, output), cancellation.ts,
 * result-waiter.ts and gateway/ (exec, port-forward); this class holds the connection they share.
 */
export class StevedoreClient {
  readonly address: QueueAddress;
  private readonly redis: RedisConnection;
  private readonly queue: Queue;
  private readonly reader: JobReader;
  private readonly waiter: ResultWaiter;
  private readonly signer: { id: string; privateKey: KeyObject } | undefined;
  private readonly gateway: ClientGateway;

  constructor(private readonly options: ClientOptions) {
    // Checked before anything connects, so a bad key is one clear error and nothing to close.
    this.signer = options.signingKey && {
      id: options.signingKey.id,
      privateKey: toPrivateKey(options.signingKey),
    };
    this.address = { queue: options.queue ?? DEFAULT_QUEUE, prefix: options.prefix ?? DEFAULT_PREFIX };
    const clusterProblem = isClusterTarget(options.redis)
      ? clusterPrefixProblem(this.address.prefix)
      : undefined;
    if (clusterProblem) throw new Error(`creating a client for a Redis Cluster: ${clusterProblem}`);
    const durable = options.durability && durabilityProblem(options.durability);
    if (durable) throw new ValidationError(`creating a client: ${durable}`);
    const keepalive = resolveKeepalive(options.gatewayKeepalive);
    const onError = options.onError ?? (() => undefined);
    const reconnect = () => connect(options.redis, onError, options.tls);
    this.redis = connect(options.redis, onError, options.tls);
    this.queue = new Queue(this.address.queue, { connection: this.redis, prefix: this.address.prefix });
    this.queue.on('error', onError);
    const { redis, queue, address } = this;
    this.reader = new JobReader({
      queue,
      redis,
      address,
      connect: reconnect,
      workerStaleMs: options.workerStaleMs,
    });
    this.waiter = new ResultWaiter({
      redis,
      address,
      connect: reconnect,
      onError,
      getResult: (id) => this.getResult(id),
      deadlineOf: (id) => queueDeadlineOf(redis, address, id),
    });
    this.gateway = new ClientGateway(
      queueGatewayLookups({ queue, redis, address, status: (id) => this.getStatus(id) }),
      { signingKey: this.signer, tls: options.gatewayTls, keepalive },
    );
  }

  /** Validates the spec (throwing InvalidSpecError listing every problem) and enqueues it. */
  submit(spec: JobSpecInput, options: SubmitOptions = {}): Promise<{ id: string }> {
    const { queue, redis, address, signer } = this;
    return submitJob({ queue, redis, address, signer, durability: this.options.durability }, spec, options);
  }

  /** The result of a finished job, null while it is unfinished; throws UnknownJobError for an unknown id. */
  getResult(id: string): Promise<JobResult | null> {
    return this.reader.result(id);
  }

  /** Resolves with the result as soon as the job finishes; event-driven, not polling. */
  waitForResult(id: string, options: { timeoutMs?: number } = {}): Promise<JobResult> {
    return this.waiter.wait(id, options);
  }

  /**
   * One output stream of a job ('stdout', 'stderr' or 'events'), from its bounded copy in
   * Redis, readable on any host; with `follow`, until the job has finished.
   */
  logs(id: string, options: { follow?: boolean; stream?: OutputStream } = {}): AsyncGenerator<Buffer> {
    return this.reader.logs(id, options);
  }

  getProgress(id: string): Promise<JobProgress | null> {
    return this.reader.progress(id);
  }

  /**
   * Where the job is, its progress, while it is not running why it waits (`waiting`), and which
   * run it is on with the reruns its retry budgets have left (`runs`), read at once from the
   * queue's state, the workers' presence and the run history: a few Redis commands in one round
   * trip whatever the queue's length (two for a job no worker has taken: its spec's retry rules).
   * Throws UnknownJobError for an unknown id.
   */
  getStatus(id: string, options: { staleMs?: number } = {}): Promise<JobStatus> {
    return this.reader.status(id, options);
  }

  /**
   * Cancels a job from any process. A waiting or delayed job is removed and gets a Cancelled
   * result; an active job's worker stops its container. The request is recorded first, so a
   * worker that takes the job meanwhile sees it before starting a container.
   */
  cancel(id: string): Promise<CancelOutcome> {
    const { queue, redis, address, reader } = this;
    return cancelJob({ queue, redis, address, sideResult: (jobId) => reader.sideResult(jobId) }, id);
  }

  /**
   * Runs a command in a running job's container through its worker's gateway (docs/gateway.md):
   * the command's stdin, stdout and stderr as streams, resize() for a terminal, and its exit code.
   * Rejects with GatewayError saying why when the job has no reachable gateway or it refuses;
   * `exitCode` rejects with GatewayError when the session ends without one.
   */
  exec(id: string, command: string[], options: JobExecOptions = {}): Promise<ExecSession> {
    return this.gateway.exec(id, command, options);
  }

  /**
   * A TCP port inside a running job with a network: `connect()` gives a duplex per connection,
   * `listen()` a local listener that forwards each connection. Rejects with GatewayError when the
   * job is not running, has no gateway, or has no network.
   */
  portForward(id: string, remotePort: number): Promise<PortForward> {
    return this.gateway.portForward(id, remotePort);
  }

  async close(): Promise<void> {
    await this.waiter.close();
    await this.queue.close();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
