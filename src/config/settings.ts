import { DEFAULT_PING_MS, defaultPeerTimeoutMs, MIN_PING_MS } from '../jobs/gateway/keepalive.js';
import {
  DEFAULT_KEEP_FINISHED,
  DEFAULT_LIVE_OUTPUT_BYTES,
  DEFAULT_PREFIX,
  DEFAULT_QUEUE,
  LIVE_CHUNK_BYTES,
} from '../jobs/keys.js';
import {
  DEFAULT_ENGINE_OUTAGE_MS,
  DEFAULT_HOST_DEAD_MS,
  DEFAULT_LOCK_DURATION_MS,
  DEFAULT_PULL_STALL_MS,
  DEFAULT_PULL_TIMEOUT_MS,
  DEFAULT_RESULT_REPLICAS_TIMEOUT_MS,
  DEFAULT_SHUTDOWN_GRACE_MS,
  DEFAULT_SIF_CACHE_BYTES,
  DEFAULT_SIF_CONVERT_TIMEOUT_MS,
  MIN_HOST_DEAD_MS,
} from './defaults.js';
import type { Env } from './env.js';

/** The sections of docs/configuration.md, in order: each setting is documented in exactly one. */
export const AREAS = {
  redis: 'Redis and the queue',
  worker: 'Worker',
  runtime: 'Runtimes',
  images: 'Images',
  security: 'Policy and signatures',
  dashboard: 'Dashboard',
  host: 'Host environment',
} as const;

/** One environment variable Stevedore reads: its section, its type and its default, as the docs show them. */
export interface Setting {
  area: keyof typeof AREAS;
  type: string;
  /** Markdown, exactly as in the docs table (a unit test compares them). */
  default: string;
}

const code = (value: string | number): string => `\`${value}\``;
const UNSET = 'unset';

/**
 * Every environment variable read anywhere in src/: the loaders can only ask for a name listed
 * here (`SettingName`), and test/unit/settings-docs.test.ts holds docs/configuration.md to it.
 */
export const SETTINGS = {
  REDIS_URL: { area: 'redis', type: 'URL', default: `${UNSET}: the state dir's embedded \`redis-server\`` },
  REDIS_SENTINELS: { area: 'redis', type: '`host:port,…`', default: `${UNSET}: no Sentinel` },
  REDIS_SENTINEL_NAME: {
    area: 'redis',
    type: 'name',
    default: `${UNSET} (required with \`REDIS_SENTINELS\`)`,
  },
  REDIS_SENTINEL_PASSWORD: { area: 'redis', type: 'string', default: `${UNSET}: the sentinels ask for none` },
  REDIS_CLUSTER_NODES: { area: 'redis', type: '`host:port,…`', default: `${UNSET}: no Cluster` },
  REDIS_USERNAME: { area: 'redis', type: 'ACL user', default: `${UNSET}: \`default\`` },
  REDIS_PASSWORD: { area: 'redis', type: 'string', default: `${UNSET}: no password` },
  STEVEDORE_REDIS_TLS_CA: { area: 'redis', type: 'path', default: `${UNSET}: Node's built-in CAs` },
  STEVEDORE_REDIS_TLS_CERT: { area: 'redis', type: 'path', default: `${UNSET}: no client certificate` },
  STEVEDORE_REDIS_TLS_KEY: { area: 'redis', type: 'path', default: `${UNSET}: no client certificate` },
  STEVEDORE_QUEUE: { area: 'redis', type: 'name, no `:`', default: code(DEFAULT_QUEUE) },
  STEVEDORE_PREFIX: { area: 'redis', type: 'key prefix', default: code(DEFAULT_PREFIX) },
  STEVEDORE_STATE_DIR: {
    area: 'redis',
    type: 'path',
    default: '`$XDG_STATE_HOME/stevedore`, else `~/.local/state/stevedore`',
  },

  STEVEDORE_CONCURRENCY: { area: 'worker', type: 'whole number ≥ 1', default: 'number of cores' },
  STEVEDORE_WORKER_ID: {
    area: 'worker',
    type: 'string',
    default: '`<host>-<pid>-<4 random characters>`',
  },
  STEVEDORE_LOCK_DURATION_MS: {
    area: 'worker',
    type: 'milliseconds ≥ 1000',
    default: code(DEFAULT_LOCK_DURATION_MS),
  },
  STEVEDORE_SHUTDOWN_GRACE_MS: {
    area: 'worker',
    type: 'milliseconds ≥ 0',
    default: code(DEFAULT_SHUTDOWN_GRACE_MS),
  },
  STEVEDORE_ON_SHUTDOWN: { area: 'worker', type: '`stop` or `detach`', default: code('stop') },
  STEVEDORE_ENGINE_OUTAGE_MS: {
    area: 'worker',
    type: 'milliseconds ≥ 1000',
    default: code(DEFAULT_ENGINE_OUTAGE_MS),
  },
  STEVEDORE_HOST_DEAD_MS: {
    area: 'worker',
    type: `milliseconds ≥ ${MIN_HOST_DEAD_MS}`,
    default: code(DEFAULT_HOST_DEAD_MS),
  },
  STEVEDORE_RESULT_REPLICAS: {
    area: 'worker',
    type: 'whole number ≥ 0',
    default: '`0`: no wait',
  },
  STEVEDORE_RESULT_REPLICAS_TIMEOUT_MS: {
    area: 'worker',
    type: 'milliseconds ≥ 1',
    default: code(DEFAULT_RESULT_REPLICAS_TIMEOUT_MS),
  },
  STEVEDORE_LOG_DIR: { area: 'worker', type: 'path', default: '`<state dir>/logs`' },
  STEVEDORE_LIVE_OUTPUT_BYTES: {
    area: 'worker',
    type: `bytes ≥ ${LIVE_CHUNK_BYTES}`,
    default: code(DEFAULT_LIVE_OUTPUT_BYTES),
  },
  STEVEDORE_KEEP_FINISHED: { area: 'worker', type: 'whole number ≥ 1', default: code(DEFAULT_KEEP_FINISHED) },
  STEVEDORE_HTTP: { area: 'worker', type: '`host:port`', default: `${UNSET}: no HTTP endpoint` },
  STEVEDORE_GATEWAY: { area: 'worker', type: '`host:port`', default: `${UNSET}: no gateway` },
  STEVEDORE_GATEWAY_ADVERTISE: {
    area: 'worker',
    type: '`host` or `host:port`',
    default:
      "the listen address; when that is `0.0.0.0` or `::`, this host's first external IPv4 address, else its name",
  },
  STEVEDORE_GATEWAY_TLS_CERT: { area: 'worker', type: 'path', default: `${UNSET}: plain TCP` },
  STEVEDORE_GATEWAY_TLS_KEY: { area: 'worker', type: 'path', default: `${UNSET}: plain TCP` },
  STEVEDORE_GATEWAY_PING_MS: {
    area: 'worker',
    type: `milliseconds ≥ ${MIN_PING_MS}`,
    default: code(DEFAULT_PING_MS),
  },
  STEVEDORE_GATEWAY_PEER_TIMEOUT_MS: {
    area: 'worker',
    type: 'milliseconds ≥ 2 pings',
    default: `3 pings + 5 s (${code(defaultPeerTimeoutMs(DEFAULT_PING_MS))})`,
  },
  LOG_LEVEL: { area: 'worker', type: 'pino level', default: '`info` (`stevedore demo`: `warn`)' },

  STEVEDORE_RUNTIME: {
    area: 'runtime',
    type: '`docker`, `podman` or `singularity`',
    default: code('docker'),
  },
  STEVEDORE_LOG_DRIVER: {
    area: 'runtime',
    type: 'log driver name',
    default: `${UNSET}: the runtime's (\`local\`; Podman: \`k8s-file\`)`,
  },
  STEVEDORE_NETNS: { area: 'runtime', type: '`reuse` or `fresh`', default: code('reuse') },
  STEVEDORE_PODMAN_SOCKET: {
    area: 'runtime',
    type: 'path or `unix://` URL',
    default: '`$XDG_RUNTIME_DIR/podman/podman.sock`, else `/run/podman/podman.sock`',
  },
  STEVEDORE_SINGULARITY_BIN: {
    area: 'runtime',
    type: 'program',
    default: '`apptainer`, else `singularity`, on `PATH`',
  },
  STEVEDORE_SIF_CACHE: { area: 'runtime', type: 'path', default: '`~/.cache/stevedore/sif`' },
  STEVEDORE_SIF_CACHE_BYTES: {
    area: 'runtime',
    type: 'bytes ≥ 1',
    default: `${code(DEFAULT_SIF_CACHE_BYTES)} (20 GiB)`,
  },
  STEVEDORE_SIF_CONVERT_TIMEOUT_MS: {
    area: 'runtime',
    type: 'milliseconds ≥ 1000',
    default: `${code(DEFAULT_SIF_CONVERT_TIMEOUT_MS)} (30 min)`,
  },

  STEVEDORE_REGISTRY_AUTH: {
    area: 'images',
    type: 'path',
    default: '`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`',
  },
  STEVEDORE_PULL_TIMEOUT_MS: {
    area: 'images',
    type: 'milliseconds ≥ 1000',
    default: `${code(DEFAULT_PULL_TIMEOUT_MS)} (30 min)`,
  },
  STEVEDORE_PULL_STALL_MS: {
    area: 'images',
    type: 'milliseconds ≥ 100',
    default: code(DEFAULT_PULL_STALL_MS),
  },

  STEVEDORE_POLICY: { area: 'security', type: 'path', default: `${UNSET}: the safe defaults` },
  STEVEDORE_TRUSTED_KEYS: { area: 'security', type: 'path', default: `${UNSET}: no signature required` },
  STEVEDORE_SIGNING_KEY: { area: 'security', type: 'path', default: `${UNSET}: jobs are submitted unsigned` },
  STEVEDORE_GATEWAY_TLS_CA: { area: 'security', type: 'path', default: `${UNSET}: Node's built-in CAs` },

  STEVEDORE_DASHBOARD_TOKEN: {
    area: 'dashboard',
    type: 'string, 16 characters or more',
    default: `${UNSET}: loopback addresses only`,
  },

  HOME: { area: 'host', type: 'path', default: "the user's home directory" },
  XDG_STATE_HOME: { area: 'host', type: 'path', default: '`~/.local/state`' },
  XDG_RUNTIME_DIR: { area: 'host', type: 'path', default: UNSET },
  DOCKER_CONFIG: { area: 'host', type: 'path', default: '`~/.docker`' },
  DOCKER_HOST: { area: 'host', type: 'URL', default: `${UNSET}: \`/var/run/docker.sock\`` },
  PATH: { area: 'host', type: 'path list', default: "the worker's own" },
  CUDA_VISIBLE_DEVICES: { area: 'host', type: 'device list', default: UNSET },
  AMD_VISIBLE_DEVICES: { area: 'host', type: 'device list', default: UNSET },
} as const satisfies Record<string, Setting>;

export type SettingName = keyof typeof SETTINGS;

/** Values by variable name, e.g. CLI flags already mapped onto the variables they stand for. */
export type Overrides = Partial<Record<SettingName, string>>;

/** Reads a declared setting: the override (a CLI flag) first, then the environment. */
export type SettingReader = (name: SettingName) => string | undefined;

export function settingReader(env: Env, overrides: Overrides = {}): SettingReader {
  return (name) => overrides[name] ?? env[name];
}
