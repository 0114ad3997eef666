import type { Logger } from 'pino';
import type { RedisTopology } from '../config/redis-topology.js';
import type { RuntimeOptions } from '../executors/index.js';
import type { GatewayServe } from './gateway-jobs.js';
import type { WorkerEvents } from './observer.js';
import type { WorkerProbe } from './probe.js';

/** What startWorker takes beside its configuration. */
export interface WorkerDeps {
  logger?: Logger;
  /** Settings of the runtime beyond the worker's configuration (a docker client, say). */
  runtimeOptions?: RuntimeOptions;
  /** Where the worker tells what it does (metrics subscribe before it starts); absent: its own. */
  events?: WorkerEvents;
  /**
   * Starts the exec gateway when STEVEDORE_GATEWAY is set: `startGatewayServer` of src/gateway
   * (exported by the package), which the worker is given rather than imports.
   */
  serveGateway?: GatewayServe;
}

export interface WorkerHandle {
  readonly id: string;
  /** The Redis in use (a URL, or a Sentinel or Cluster), with its password if any: for connecting, never for logs (describeTarget). */
  readonly redis: string | RedisTopology;
  /** Stops taking jobs; running jobs get `shutdownGraceMs`, then are stopped and put back without spending an attempt. */
  close(options?: { graceMs?: number }): Promise<void>;
  /** Number of jobs running now. */
  running(): number;
  readonly queue: string;
  /** Jobs it runs at once (STEVEDORE_CONCURRENCY). */
  readonly capacity: number;
  readonly events: WorkerEvents;
  /** Asks Redis and the engine now, each within PROBE_TIMEOUT_MS. */
  probe(): Promise<WorkerProbe>;
  /** Why it takes no jobs now (closing, paused), or null: no I/O, so callers that cache `probe()` ask it fresh. */
  whyNoJobs(): string | null;
  /** The queue's jobs by state (one Redis read; callers cache it). */
  queueCounts(): Promise<Record<string, number>>;
}
