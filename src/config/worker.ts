import { availableParallelism, homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { podmanSocketPath, RUNTIME_KINDS, type RuntimeKind } from '../executors/index.js';
import {
  DEFAULT_KEEP_FINISHED,
  DEFAULT_LIVE_OUTPUT_BYTES,
  DEFAULT_PREFIX,
  DEFAULT_QUEUE,
  LIVE_CHUNK_BYTES,
} from '../jobs/keys.js';
import { DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_PIDS_LIMIT } from '../policy/policy.js';
import { defaultStateDir } from './client.js';
import {
  DEFAULT_ENGINE_OUTAGE_MS,
  DEFAULT_LOCK_DURATION_MS,
  DEFAULT_PULL_STALL_MS,
  DEFAULT_PULL_TIMEOUT_MS,
  DEFAULT_SHUTDOWN_GRACE_MS,
  DEFAULT_SIF_CACHE_BYTES,
  DEFAULT_SIF_CONVERT_TIMEOUT_MS,
} from './defaults.js';
import { type Env, processEnv } from './env.js';
import { ConfigError } from './errors.js';
import { externalAddress, type GatewayConfig, gatewayConfig } from './gateway.js';
import { type HttpAddress, parseHttpAddress } from './http-address.js';
import { checkRedisUrl, type RedisTlsFiles, redisTlsFiles } from './redis.js';
import { type RedisTopology, redisTopology } from './redis-topology.js';
import { type Overrides, type SettingReader, settingReader } from './settings.js';
import { logLevelOf, oneOf, wholeNumber } from './values.js';

export type ShutdownMode = 'stop' | 'detach';

/** Bounds on every job the worker runs; the worker policy supplies them, these are the defaults. */
export interface WorkerLimits {
  /** Processes and threads per job container. */
  pidsLimit: number;
  /** Bytes of each output stream of a job kept on disk; the rest is counted, not written. */
  maxOutputBytes: number;
}

export const DEFAULT_LIMITS: Readonly<WorkerLimits> = {
  pidsLimit: DEFAULT_PIDS_LIMIT,
  maxOutputBytes: DEFAULT_MAX_OUTPUT_BYTES,
};

/** Everything a worker needs to know, from `loadConfig`; each field's variable is in docs/configuration.md. */
export interface WorkerConfig {
  /** Absent: start a private redis-server (embedded mode). */
  redisUrl?: string;
  /** PEM files for a `rediss://` REDIS_URL (read at start by `readRedisTls`); absent: Node's defaults. */
  redisTls?: RedisTlsFiles;
  /** REDIS_SENTINELS… or REDIS_CLUSTER_NODES (then `redisUrl` is absent); the Cluster's prefix is hash-tagged. */
  redisTopology?: RedisTopology;
  queue: string;
  prefix: string;
  concurrency: number;
  runtime: RuntimeKind;
  /** STEVEDORE_SINGULARITY_BIN, STEVEDORE_SIF_CACHE (and its cap), the conversion's bound, the PATH the program is looked for on. */
  singularity: {
    bin?: string;
    sifCache?: string;
    sifCacheBytes?: number;
    convertTimeoutMs?: number;
    searchPath?: string;
  };
  /** Full stdout/stderr of every attempt are written here. */
  logDir: string;
  /** Embedded Redis data and its URL file. */
  stateDir: string;
  lockDurationMs: number;
  shutdownGraceMs: number;
  /** How long the Docker daemon may be unreachable (a restart) before a running job fails as infra. */
  engineOutageMs: number;
  logLevel: string;
  workerId: string;
  host: string;
  /** Bytes of each output stream of each job kept in Redis for live logs. */
  liveOutputBytes: number;
  /** Finished jobs of each kind (completed, failed) kept in Redis, newest first; older than a week go anyway. */
  keepFinished: number;
  /** On SIGTERM: stop running containers and requeue their jobs, or leave them running for the next worker to adopt. */
  onShutdown: ShutdownMode;
  /**
   * Log driver of job containers; absent: the runtime's (Docker "local", Podman "k8s-file"), which
   * keeps output for adoption; "none" is faster and keeps none.
   */
  logDriver?: string;
  /** STEVEDORE_PODMAN_SOCKET, else $XDG_RUNTIME_DIR/podman/podman.sock, else /run/podman/podman.sock. */
  podmanSocket: string;
  /** PATH, where the worker looks for the podman program when it must start the service. */
  searchPath?: string;
  /**
   * Jobs without network: "reuse" joins each to a loopback-only namespace a finished job of this
   * worker used before (much cheaper for the host), "fresh" gives each one of its own.
   */
  netns: 'reuse' | 'fresh';
  cudaVisibleDevices?: string;
  amdVisibleDevices?: string;
  /** The Docker config.json with registry credentials; `required` when named explicitly. */
  registryAuth: { path: string; required: boolean };
  /** A whole image pull may take this long (then: infra, retried). */
  pullTimeoutMs: number;
  /** A pull may go this long without a byte of progress (then: infra, retried). */
  pullStallMs: number;
  /** A directory of `<key id>.pub` files; set: only jobs signed by one of them run. */
  trustedKeysDir?: string;
  /** Set by code (tests, embedders): wins over the policy file's pidsLimit and maxOutputBytes. */
  limits?: WorkerLimits;
  /** STEVEDORE_POLICY: the policy file (YAML or JSON); absent = the safe defaults. */
  policyPath?: string;
  /** DOCKER_HOST as set: its socket is a host path no job may bind. */
  dockerHost?: string;
  /** STEVEDORE_HTTP: where /metrics, /healthz and /readyz listen; absent = no HTTP endpoint. */
  http?: HttpAddress;
  /** STEVEDORE_GATEWAY and its companions: the exec gateway; absent = none. */
  gateway?: GatewayConfig;
}

/**
 * Where registry credentials are read from: STEVEDORE_REGISTRY_AUTH (it must be there), else
 * Docker's own places, $DOCKER_CONFIG/config.json or ~/.docker/config.json (none there: anonymous pulls).
 */
function registryAuthPath(get: SettingReader): { path: string; required: boolean } {
  const explicit = get('STEVEDORE_REGISTRY_AUTH');
  if (explicit) return { path: explicit, required: true };
  const dir = get('DOCKER_CONFIG') || join(get('HOME') || homedir(), '.docker');
  return { path: join(dir, 'config.json'), required: false };
}

/** The queue's name, which BullMQ uses in its keys: a `:` would break them. */
function queueOf(get: SettingReader): string {
  const queue = get('STEVEDORE_QUEUE') || DEFAULT_QUEUE;
  if (queue.includes(':'))
    throw new ConfigError(`STEVEDORE_QUEUE=${JSON.stringify(queue)} is invalid: must not contain ":"`);
  return queue;
}

function logDriverOf(get: SettingReader): string | undefined {
  const logDriver = get('STEVEDORE_LOG_DRIVER') || undefined;
  if (logDriver !== undefined && !/^[a-z0-9-]+$/.test(logDriver)) {
    throw new ConfigError(
      `STEVEDORE_LOG_DRIVER=${JSON.stringify(logDriver)} is invalid: expected a driver name such as none or local`,
    );
  }
  return logDriver;
}

/**
 * Reads the worker's configuration from the environment, with `overrides` (from CLI flags)
 * taking precedence. Throws ConfigError naming the variable for any bad value.
 */
export function loadConfig(env: Env = processEnv(), overrides: Overrides = {}): WorkerConfig {
  const get = settingReader(env, overrides);
  const runtime = oneOf(get, 'STEVEDORE_RUNTIME', RUNTIME_KINDS, 'docker');
  const prefix = get('STEVEDORE_PREFIX') || DEFAULT_PREFIX;
  const topology = redisTopology(get, prefix);
  const redisUrl = get('REDIS_URL') || undefined;
  checkRedisUrl(redisUrl);
  const redisTls = redisTlsFiles(get, redisUrl, topology !== undefined);
  const queue = queueOf(get);
  const logLevel = logLevelOf(get);
  const stateDir = get('STEVEDORE_STATE_DIR') || defaultStateDir(env);
  const host = hostname();
  const onShutdown = oneOf(get, 'STEVEDORE_ON_SHUTDOWN', ['stop', 'detach'], 'stop');
  const logDriver = logDriverOf(get);
  const netns = oneOf(get, 'STEVEDORE_NETNS', ['reuse', 'fresh'], 'reuse');
  const http = get('STEVEDORE_HTTP');
  return {
    redisUrl,
    redisTls,
    redisTopology: topology,
    queue,
    prefix,
    concurrency: wholeNumber(get, 'STEVEDORE_CONCURRENCY', availableParallelism()),
    runtime,
    singularity: {
      bin: get('STEVEDORE_SINGULARITY_BIN') || undefined,
      sifCache: get('STEVEDORE_SIF_CACHE') || undefined,
      sifCacheBytes: wholeNumber(get, 'STEVEDORE_SIF_CACHE_BYTES', DEFAULT_SIF_CACHE_BYTES, 1),
      convertTimeoutMs: wholeNumber(
        get,
        'STEVEDORE_SIF_CONVERT_TIMEOUT_MS',
        DEFAULT_SIF_CONVERT_TIMEOUT_MS,
        1_000,
      ),
      searchPath: get('PATH'),
    },
    logDir: get('STEVEDORE_LOG_DIR') || join(stateDir, 'logs'),
    stateDir,
    lockDurationMs: wholeNumber(get, 'STEVEDORE_LOCK_DURATION_MS', DEFAULT_LOCK_DURATION_MS, 1_000),
    shutdownGraceMs: wholeNumber(get, 'STEVEDORE_SHUTDOWN_GRACE_MS', DEFAULT_SHUTDOWN_GRACE_MS, 0),
    engineOutageMs: wholeNumber(get, 'STEVEDORE_ENGINE_OUTAGE_MS', DEFAULT_ENGINE_OUTAGE_MS, 1_000),
    logLevel,
    onShutdown,
    logDriver,
    netns,
    liveOutputBytes: wholeNumber(
      get,
      'STEVEDORE_LIVE_OUTPUT_BYTES',
      DEFAULT_LIVE_OUTPUT_BYTES,
      LIVE_CHUNK_BYTES,
    ),
    keepFinished: wholeNumber(get, 'STEVEDORE_KEEP_FINISHED', DEFAULT_KEEP_FINISHED),
    workerId:
      get('STEVEDORE_WORKER_ID') || `${host}-${process.pid}-${Math.random().toString(36).slice(2, 6)}`,
    host,
    cudaVisibleDevices: get('CUDA_VISIBLE_DEVICES'),
    amdVisibleDevices: get('AMD_VISIBLE_DEVICES'),
    registryAuth: registryAuthPath(get),
    pullTimeoutMs: wholeNumber(get, 'STEVEDORE_PULL_TIMEOUT_MS', DEFAULT_PULL_TIMEOUT_MS, 1_000),
    pullStallMs: wholeNumber(get, 'STEVEDORE_PULL_STALL_MS', DEFAULT_PULL_STALL_MS, 100),
    trustedKeysDir: get('STEVEDORE_TRUSTED_KEYS') || undefined,
    policyPath: get('STEVEDORE_POLICY') || undefined,
    dockerHost: get('DOCKER_HOST') || undefined,
    podmanSocket: podmanSocketPath(
      get('STEVEDORE_PODMAN_SOCKET') || undefined,
      get('XDG_RUNTIME_DIR') || undefined,
    ),
    searchPath: get('PATH'),
    http: http ? parseHttpAddress(http) : undefined,
    gateway: gatewayConfig(get, { name: host, address: externalAddress() }),
  };
}
