import { type KeyObject, randomUUID } from 'node:crypto';
import type { ConnectionOptions } from 'node:tls';
import { Job, Queue } from 'bullmq';
import {
  connect,
  isClusterTarget,
  type RedisConnection,
  type RedisTarget,
  type RedisTls,
} from './connection.js';
import { coerceError, ReplicationError, UnknownJobError, ValidationError } from './errors.js';
import { ClientGateway, type JobExecOptions, type PortForward } from './gateway/client-gateway.js';
import { type Keepalive, resolveKeepalive } from './gateway/keepalive.js';
import { readGateway } from './gateway/registration.js';
import type { ExecSession } from './gateway/session.js';
import {
  bullmqKeys,
  clusterPrefixProblem,
  DEFAULT_PREFIX,
  DEFAULT_QUEUE,
  keys,
  type OutputStream,
  type QueueAddress,
  SIDE_KEY_TTL_SECONDS,
} from './keys.js';
import { readLiveOutput } from './logs.js';
import { checkJobId } from './names.js';
import type { JobProgress } from './progress.js';
import { expireQueued, queueDeadlineOf, registerQueueDeadline } from './queue-timeout.js';
import { acknowledgedBy, type Durability, durabilityProblem } from './replicas.js';
import { type JobResult, resultWithoutRun } from './result.js';
import { ResultWaiter } from './result-waiter.js';
import { type SigningKey, signedJobData, toPrivateKey } from './signing.js';
import { type JobSpecInput, parseJobSpec } from './spec.js';
import { type JobStatus, readStatus } from './status.js';

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

export interface SubmitOptions {
  /** Your own id; submitting the same id twice yields the same job (idempotent). */
  jobId?: string;
  /**
   * Tries in all, for infrastructure failures (default 3): the old name of the spec's
   * `retry.infraLimit` (plus one), which wins when both are given (docs/retries.md).
   */
  attempts?: number;
  /** The old name of the spec's `retry.backoff` (milliseconds), which wins when both are given. */
  backoff?: number | { type: 'fixed' | 'exponential'; delay: number };
  /** 1 (highest) … 2097152; lower runs first. */
  priority?: number;
  /** Milliseconds to wait before the job may run. */
  delay?: number;
  /** Signed jobs only: no worker takes the job after this (Date or Unix ms); default 24 h from now. */
  notAfter?: Date | number;
}

export type CancelOutcome = 'cancelled' | 'cancelling' | 'finished';

const DEFAULT_ATTEMPTS = 3;
const DEFAULT_BACKOFF = { type: 'exponential' as const, delay: 1_000 };
const WAITING_STATES = new Set(['waiting', 'delayed', 'prioritized', 'paused', 'waiting-children']);
/** States a job reaches once a worker has taken it. */
const TAKEN_STATES = new Set(['active', 'completed', 'failed']);

/** Submits container jobs and reads their results, from any process. */
export class StevedoreClient {
  readonly address: QueueAddress;
  private readonly redis: RedisConnection;
  private readonly queue: Queue;
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
    this.redis = connect(options.redis, onError, options.tls);
    this.queue = new Queue(this.address.queue, { connection: this.redis, prefix: this.address.prefix });
    this.queue.on('error', onError);
    this.waiter = new ResultWaiter({
      redis: this.redis,
      address: this.address,
      connect: () => connect(options.redis, onError, options.tls),
      onError,
      getResult: (id) => this.getResult(id),
      deadlineOf: (id) => queueDeadlineOf(this.redis, this.address, id),
    });
    this.gateway = new ClientGateway(
      {
        entry: (id) => readGateway(this.redis, this.address, id),
        status: (id) => this.getStatus(id),
        networkEnabled: async (id) => {
          const job = await Job.fromId<JobSpecInput>(this.queue, id);
          return job ? job.data.network?.enabled === true : null;
        },
      },
      { signingKey: this.signer, tls: options.gatewayTls, keepalive },
    );
  }

  /** Validates the spec (throwing InvalidSpecError listing every problem) and enqueues it. */
  async submit(spec: JobSpecInput, options: SubmitOptions = {}): Promise<{ id: string }> {
    const parsed = parseJobSpec(spec);
    // BullMQ's own count says what the job's status shows ("attempt 1 of 3"): the spec's budget.
    const infraLimit = parsed.retry?.infraLimit;
    if (options.jobId !== undefined) checkJobId(options.jobId);
    const queueSeconds = parsed.timeouts?.queueSeconds;
    if (queueSeconds !== undefined && (options.delay ?? 0) >= queueSeconds * 1000)
      throw new ValidationError(
        `delay (${options.delay} ms) is not less than timeouts.queueSeconds (${queueSeconds} s), which counts from submit: the job would time out before it may run; shorten the delay or raise queueSeconds`,
      );
    if (!this.signer && options.notAfter !== undefined)
      throw new ValidationError('notAfter applies to signed jobs only: give the client a signingKey');
    // A signature covers the job id, so a signed job gets its id here rather than from BullMQ.
    const jobId = this.signer ? (options.jobId ?? randomUUID()) : options.jobId;
    const data = this.signer
      ? signedJobData(
          spec,
          { jobId: jobId as string, queue: this.address.queue, notAfter: options.notAfter },
          this.signer,
        )
      : spec;
    const job = await this.queue.add('run', data, {
      jobId,
      attempts: infraLimit === undefined ? (options.attempts ?? DEFAULT_ATTEMPTS) : infraLimit + 1,
      backoff: options.backoff ?? DEFAULT_BACKOFF,
      priority: options.priority,
      delay: options.delay,
    });
    if (job.id === undefined) throw new Error('submitting: Redis did not return a job id');
    if (this.options.durability) await this.confirmOnReplicas(job.id, this.options.durability);
    // After the add, since BullMQ may choose the id. A producer that dies in between leaves the
    // deadline to the worker that takes the job (from the job's timestamp): docs/job-spec.md#timeouts.
    if (queueSeconds !== undefined)
      await registerQueueDeadline(this.redis, this.address, job.id, queueSeconds);
    return { id: job.id };
  }

  /**
   * Throws a ReplicationError unless `durability.replicas` replicas hold the job. The master has
   * it either way, so the error says the job may exist: a failover before it reached a replica
   * would lose it, and submitting again with the same jobId is a no-op when it is there.
   */
  private async confirmOnReplicas(id: string, durability: Durability): Promise<void> {
    const { replicas, timeoutMs } = durability;
    const what = `submitting job ${id}: the master took it, but`;
    const after = `the job exists on the master and may run, or be lost if the master fails over before a replica has it: check with getStatus("${id}") and submit again with jobId "${id}" (a no-op when the job is there)`;
    let acknowledged: number;
    try {
      acknowledged = await acknowledgedBy(this.redis, bullmqKeys.job(this.address, id), durability);
    } catch (error) {
      throw new ReplicationError(
        `${what} asking for its replicas (WAIT) failed: ${coerceError(error).message}; ${after}`,
        0,
        replicas,
      );
    }
    if (acknowledged >= replicas) return;
    throw new ReplicationError(
      `${what} ${acknowledged} of the ${replicas} replica${replicas === 1 ? '' : 's'} asked for (durability.replicas) confirmed it within ${timeoutMs} ms (durability.timeoutMs); ${after}, or give the replicas more time`,
      acknowledged,
      replicas,
    );
  }

  /** The result of a finished job, null while it is unfinished; throws UnknownJobError for an unknown id. */
  async getResult(id: string): Promise<JobResult | null> {
    const job = await Job.fromId<JobSpecInput, JobResult>(this.queue, id);
    if (!job) {
      const side = await this.sideResult(id);
      if (side) return side;
      throw new UnknownJobError(id);
    }
    // The job hash says whether it finished; no extra round trip for getState().
    if (job.finishedOn && job.returnvalue) return job.returnvalue;
    if (job.finishedOn && job.failedReason)
      return (await this.sideResult(id)) ?? failedWithoutResult(id, job);
    // Waiting past its queue deadline with no worker to end it: asking ends it.
    return expireQueued(this.redis, this.queue, this.address, id);
  }

  /** Resolves with the result as soon as the job finishes; event-driven, not polling. */
  waitForResult(id: string, options: { timeoutMs?: number } = {}): Promise<JobResult> {
    return this.waiter.wait(id, options);
  }

  /**
   * One output stream of a job ('stdout', 'stderr' or 'events'), from its bounded copy in
   * Redis, readable on any host; with `follow`, until the job has finished.
   */
  async *logs(id: string, options: { follow?: boolean; stream?: OutputStream } = {}): AsyncGenerator<Buffer> {
    await this.getResult(id); // an unknown id fails here, clearly
    yield* readLiveOutput({
      connection: connect(this.options.redis, this.options.onError, this.options.tls),
      key: keys.output(this.address, id, options.stream ?? 'stdout'),
      follow: options.follow ?? false,
      finished: async () => (await this.getResult(id)) !== null,
      kept: async () => {
        const stream = options.stream ?? 'stdout';
        if (stream === 'events') return null;
        return (await this.getResult(id))?.[stream] ?? null;
      },
    });
  }

  async getProgress(id: string): Promise<JobProgress | null> {
    const job = await Job.fromId(this.queue, id);
    if (!job) {
      if (await this.sideResult(id)) return null;
      throw new UnknownJobError(id);
    }
    const progress = job.progress;
    return typeof progress === 'object' && progress !== null ? (progress as unknown as JobProgress) : null;
  }

  /**
   * Where the job is, its progress, and while it is not running why it waits (`waiting`), read
   * at once from the queue's state and the workers' presence: a few Redis commands in one round
   * trip, whatever the queue's length. Throws UnknownJobError for an unknown id.
   */
  async getStatus(id: string, options: { staleMs?: number } = {}): Promise<JobStatus> {
    await expireQueued(this.redis, this.queue, this.address, id);
    const status = await readStatus(this.redis, this.address, id, {
      staleMs: options.staleMs ?? this.options.workerStaleMs,
    });
    if (status) return status;
    // Only a side result is left of a job removed from BullMQ (cancelled while it waited).
    if (await this.sideResult(id)) return { id, state: 'failed', progress: null, waiting: null };
    throw new UnknownJobError(id);
  }

  /**
   * Cancels a job from any process. A waiting or delayed job is removed and gets a Cancelled
   * result; an active job's worker stops its container. The request is recorded first, so a
   * worker that takes the job meanwhile sees it before starting a container.
   */
  async cancel(id: string): Promise<CancelOutcome> {
    await this.redis.set(keys.cancel(this.address, id), '1', 'EX', SIDE_KEY_TTL_SECONDS);
    const job = await Job.fromId<JobSpecInput, JobResult>(this.queue, id);
    if (!job) {
      if (await this.sideResult(id)) return 'finished';
      await this.redis.del(keys.cancel(this.address, id));
      throw new UnknownJobError(id);
    }
    const state = await job.getState();
    if (state === 'completed' || state === 'failed') return 'finished';
    if (WAITING_STATES.has(state)) {
      const result = cancelledWhileWaiting(id, job);
      await this.redis.set(keys.result(this.address, id), JSON.stringify(result), 'EX', SIDE_KEY_TTL_SECONDS);
      try {
        await job.remove();
        return 'cancelled';
      } catch (error) {
        await this.redis.del(keys.result(this.address, id));
        // BullMQ refuses to remove a locked job with a plain Error: the job's state, not the
        // message, says whether a worker took it meanwhile (it then sees the flag and cancels).
        if (!TAKEN_STATES.has(await job.getState())) {
          throw new Error(
            `cancelling job ${id}: removing it from the queue failed (${coerceError(error).message}); its cancel flag is set, so no worker starts it; run cancel again`,
            { cause: error },
          );
        }
      }
    }
    await this.redis.publish(keys.cancelChannel(this.address), id);
    return 'cancelling';
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

  private async sideResult(id: string): Promise<JobResult | null> {
    const text = await this.redis.get(keys.result(this.address, id));
    return text ? (JSON.parse(text) as JobResult) : null;
  }
}

function cancelledWhileWaiting(id: string, job: Job<JobSpecInput, JobResult>): JobResult {
  return resultWithoutRun({
    jobId: id,
    data: job.data,
    state: 'Cancelled',
    reason: 'cancelled',
    attempt: job.attemptsMade,
    worker: null,
    error: { phase: 'admitted', message: 'cancelled before it started' },
  });
}

function failedWithoutResult(id: string, job: Job<JobSpecInput, JobResult>): JobResult {
  return resultWithoutRun({
    jobId: id,
    data: job.data,
    state: 'Failed',
    reason: 'infra',
    attempt: job.attemptsMade,
    worker: null,
    error: { phase: 'admitted', message: job.failedReason || 'failed without a reason' },
    finishedAt: new Date(job.finishedOn ?? Date.now()),
  });
}
