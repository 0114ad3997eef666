import { availableParallelism, homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_PULL_STALL_MS, DEFAULT_PULL_TIMEOUT_MS } from '../executors/docker/pull.js';
import { DEFAULT_PIDS_LIMIT } from '../executors/executor.js';
import { podmanSocketPath } from '../executors/podman/index.js';
import type { RuntimeKind } from '../executors/runtime.js';
import {
  DEFAULT_KEEP_FINISHED,
  DEFAULT_LIVE_OUTPUT_BYTES,
  DEFAULT_PREFIX,
  DEFAULT_QUEUE,
  LIVE_CHUNK_BYTES,
} from '../jobs/keys.js';
import { redactRedisUrl } from '../jobs/redis-url.js';
import { DEFAULT_MAX_OUTPUT_BYTES } from './output/capture.js';

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

/** Everything a worker needs to know; `loadConfig` is the one reader of process.env. */
export interface WorkerConfig {
  /** Absent: start a private redis-server (embedded mode). */
  redisUrl?: string;
  /** PEM files for a `rediss://` REDIS_URL (read at start by `readRedisTls`); absent: Node's defaults. */
  redisTls?: RedisTlsFiles;
  queue: string;
  prefix: string;
  concurrency: number;
  runtime: RuntimeKind;
  /** STEVEDORE_SINGULARITY_BIN, STEVEDORE_SIF_CACHE (and its cap), the PATH the program is looked for on. */
  singularity: { bin?: string; sifCache?: string; sifCacheBytes?: number; searchPath?: string };
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
}

/** A host and port to listen on or to ask. */
export interface HttpAddress {
  host: string;
  port: number;
}

/**
 * `host:port`, `[v6]:port` or a bare `:port` / `port` (loopback: the endpoint tells about the
 * host's jobs, so any other address must be asked for by name). Throws naming `variable`.
 */
export function parseHttpAddress(value: string, variable = 'STEVEDORE_HTTP'): HttpAddress {
  const m = /^(?:(?:\[([^\]]+)\]|([^:[\]]*)):)?(\d+)$/.exec(value.trim());
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65_535) {
    throw new ConfigError(
      `${variable}=${JSON.stringify(value)} is invalid: expected host:port with a port from 1 to 65535 (e.g. 127.0.0.1:9464, or 0.0.0.0:9464 to listen on every address)`,
    );
  }
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Paths of the TLS files for `rediss://`, from STEVEDORE_REDIS_TLS_CA, _CERT and _KEY. */
export interface RedisTlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

/** The variables of `RedisTlsFiles`, each also a `--redis-tls-…` flag. */
export const REDIS_TLS_VARIABLES = {
  ca: 'STEVEDORE_REDIS_TLS_CA',
  cert: 'STEVEDORE_REDIS_TLS_CERT',
  key: 'STEVEDORE_REDIS_TLS_KEY',
} as const;

/** REDIS_URL checked for its scheme; the message shows it with the password hidden. */
function checkRedisUrl(redisUrl: string | undefined): void {
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) {
    throw new ConfigError(
      `REDIS_URL=${JSON.stringify(redactRedisUrl(redisUrl))} is invalid: expected redis://[user:password@]host:port[/db] or rediss://… for TLS`,
    );
  }
}

/**
 * The TLS files named by the environment, undefined when none is. They only make sense with a
 * `rediss://` URL, and a client certificate needs its key: anything else is a ConfigError now
 * rather than a plain-text connection or a handshake failure later.
 */
function redisTlsFiles(
  get: (name: string) => string | undefined,
  redisUrl: string | undefined,
): RedisTlsFiles | undefined {
  const files: RedisTlsFiles = {};
  for (const [field, variable] of Object.entries(REDIS_TLS_VARIABLES) as [keyof RedisTlsFiles, string][]) {
    const value = get(variable);
    if (value) files[field] = value;
  }
  const named = Object.keys(files).map((f) => REDIS_TLS_VARIABLES[f as keyof RedisTlsFiles]);
  if (named.length === 0) return undefined;
  if (!redisUrl?.startsWith('rediss://')) {
    throw new ConfigError(
      `${named.join(', ')} ${named.length > 1 ? 'are' : 'is'} set, but REDIS_URL ${redisUrl ? 'is not a rediss:// URL' : 'is unset (the embedded Redis has no TLS)'}: use REDIS_URL=rediss://host:port, or unset ${named.join(', ')}`,
    );
  }
  if ((files.cert === undefined) !== (files.key === undefined)) {
    throw new ConfigError(
      `${files.cert ? REDIS_TLS_VARIABLES.cert : REDIS_TLS_VARIABLES.key} is set without ${files.cert ? REDIS_TLS_VARIABLES.key : REDIS_TLS_VARIABLES.cert}: a client certificate needs its key`,
    );
  }
  return files;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function positiveInt(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new ConfigError(`${name}=${JSON.stringify(value)} is invalid: expected a whole number >= ${min}`);
  }
  return n;
}

/** Default state directory: $XDG_STATE_HOME/stevedore or ~/.local/state/stevedore. */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state'), 'stevedore');
}

/**
 * Where registry credentials are read from: STEVEDORE_REGISTRY_AUTH (it must be there), else
 * Docker's own places, $DOCKER_CONFIG/config.json or ~/.docker/config.json (none there: anonymous pulls).
 */
export function registryAuthPath(
  explicit: string | undefined,
  env: NodeJS.ProcessEnv,
): { path: string; required: boolean } {
  if (explicit) return { path: explicit, required: true };
  const dir = env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker');
  return { path: join(dir, 'config.json'), required: false };
}

/**
 * Reads the worker's configuration from the environment, with `overrides` (from CLI flags)
 * taking precedence. Throws ConfigError naming the variable for any bad value.
 */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: Partial<Record<string, string>> = {},
): WorkerConfig {
  const get = (name: string): string | undefined => overrides[name] ?? env[name];
  const runtime = get('STEVEDORE_RUNTIME') || 'docker';
  if (runtime !== 'docker' && runtime !== 'podman' && runtime !== 'singularity') {
    throw new ConfigError(
      `STEVEDORE_RUNTIME=${JSON.stringify(runtime)} is invalid: expected "docker", "podman" or "singularity"`,
    );
  }
  const redisUrl = get('REDIS_URL') || undefined;
  checkRedisUrl(redisUrl);
  const redisTls = redisTlsFiles(get, redisUrl);
  const queue = get('STEVEDORE_QUEUE') || DEFAULT_QUEUE;
  if (queue.includes(':'))
    throw new ConfigError(`STEVEDORE_QUEUE=${JSON.stringify(queue)} is invalid: must not contain ":"`);
  const logLevel = get('LOG_LEVEL') || 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(
      `LOG_LEVEL=${JSON.stringify(logLevel)} is invalid: expected one of ${LOG_LEVELS.join(', ')}`,
    );
  }
  const stateDir = get('STEVEDORE_STATE_DIR') || defaultStateDir(env);
  const host = hostname();
  const onShutdown = get('STEVEDORE_ON_SHUTDOWN') || 'stop';
  if (onShutdown !== 'stop' && onShutdown !== 'detach') {
    throw new ConfigError(
      `STEVEDORE_ON_SHUTDOWN=${JSON.stringify(onShutdown)} is invalid: expected "stop" or "detach"`,
    );
  }
  const logDriver = get('STEVEDORE_LOG_DRIVER') || undefined;
  if (logDriver !== undefined && !/^[a-z0-9-]+$/.test(logDriver)) {
    throw new ConfigError(
      `STEVEDORE_LOG_DRIVER=${JSON.stringify(logDriver)} is invalid: expected a driver name such as none or local`,
    );
  }
  const netns = get('STEVEDORE_NETNS') || 'reuse';
  if (netns !== 'reuse' && netns !== 'fresh') {
    throw new ConfigError(`STEVEDORE_NETNS=${JSON.stringify(netns)} is invalid: expected "reuse" or "fresh"`);
  }
  return {
    redisUrl,
    redisTls,
    queue,
    prefix: get('STEVEDORE_PREFIX') || DEFAULT_PREFIX,
    concurrency: positiveInt('STEVEDORE_CONCURRENCY', get('STEVEDORE_CONCURRENCY'), availableParallelism()),
    runtime,
    singularity: {
      bin: get('STEVEDORE_SINGULARITY_BIN') || undefined,
      sifCache: get('STEVEDORE_SIF_CACHE') || undefined,
      sifCacheBytes: get('STEVEDORE_SIF_CACHE_BYTES')
        ? positiveInt('STEVEDORE_SIF_CACHE_BYTES', get('STEVEDORE_SIF_CACHE_BYTES'), 0, 1)
        : undefined,
      searchPath: env.PATH,
    },
    logDir: get('STEVEDORE_LOG_DIR') || join(stateDir, 'logs'),
    stateDir,
    lockDurationMs: positiveInt(
      'STEVEDORE_LOCK_DURATION_MS',
      get('STEVEDORE_LOCK_DURATION_MS'),
      30_000,
      1_000,
    ),
    shutdownGraceMs: positiveInt(
      'STEVEDORE_SHUTDOWN_GRACE_MS',
      get('STEVEDORE_SHUTDOWN_GRACE_MS'),
      30_000,
      0,
    ),
    engineOutageMs: positiveInt(
      'STEVEDORE_ENGINE_OUTAGE_MS',
      get('STEVEDORE_ENGINE_OUTAGE_MS'),
      30_000,
      1_000,
    ),
    logLevel,
    onShutdown,
    logDriver,
    netns,
    liveOutputBytes: positiveInt(
      'STEVEDORE_LIVE_OUTPUT_BYTES',
      get('STEVEDORE_LIVE_OUTPUT_BYTES'),
      DEFAULT_LIVE_OUTPUT_BYTES,
      LIVE_CHUNK_BYTES,
    ),
    keepFinished: positiveInt(
      'STEVEDORE_KEEP_FINISHED',
      get('STEVEDORE_KEEP_FINISHED'),
      DEFAULT_KEEP_FINISHED,
    ),
    workerId:
      get('STEVEDORE_WORKER_ID') || `${host}-${process.pid}-${Math.random().toString(36).slice(2, 6)}`,
    host,
    cudaVisibleDevices: env.CUDA_VISIBLE_DEVICES,
    amdVisibleDevices: env.AMD_VISIBLE_DEVICES,
    registryAuth: registryAuthPath(get('STEVEDORE_REGISTRY_AUTH') || undefined, env),
    pullTimeoutMs: positiveInt(
      'STEVEDORE_PULL_TIMEOUT_MS',
      get('STEVEDORE_PULL_TIMEOUT_MS'),
      DEFAULT_PULL_TIMEOUT_MS,
      1_000,
    ),
    pullStallMs: positiveInt(
      'STEVEDORE_PULL_STALL_MS',
      get('STEVEDORE_PULL_STALL_MS'),
      DEFAULT_PULL_STALL_MS,
      100,
    ),
    trustedKeysDir: get('STEVEDORE_TRUSTED_KEYS') || undefined,
    policyPath: get('STEVEDORE_POLICY') || undefined,
    dockerHost: env.DOCKER_HOST || undefined,
    podmanSocket: podmanSocketPath(
      get('STEVEDORE_PODMAN_SOCKET') || undefined,
      env.XDG_RUNTIME_DIR || undefined,
    ),
    searchPath: env.PATH,
    http: get('STEVEDORE_HTTP') ? parseHttpAddress(get('STEVEDORE_HTTP') as string) : undefined,
  };
}

/** Where a client command (submit, status, result, cancel, logs) finds Redis and the queue. */
export interface ClientConfig {
  /** Undefined when neither REDIS_URL nor an embedded worker's URL file is there. */
  redisUrl?: string;
  redisTls?: RedisTlsFiles;
  queue: string;
  prefix: string;
  stateDir: string;
  /** STEVEDORE_SIGNING_KEY: the producer's private key file; submit signs with it. */
  signingKeyFile?: string;
}

/** REDIS_URL, else the URL an embedded-Redis worker on this host wrote to its state directory. */
export function loadClientConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: Partial<Record<string, string>> = {},
  readUrlFile: (stateDir: string) => string | undefined = () => undefined,
): ClientConfig {
  const get = (name: string): string | undefined => overrides[name] ?? env[name];
  const stateDir = get('STEVEDORE_STATE_DIR') || defaultStateDir(env);
  const redisUrl = get('REDIS_URL') || readUrlFile(stateDir);
  checkRedisUrl(redisUrl);
  return {
    redisUrl,
    redisTls: redisTlsFiles(get, redisUrl),
    queue: get('STEVEDORE_QUEUE') || DEFAULT_QUEUE,
    prefix: get('STEVEDORE_PREFIX') || DEFAULT_PREFIX,
    stateDir,
    signingKeyFile: get('STEVEDORE_SIGNING_KEY') || undefined,
  };
}
