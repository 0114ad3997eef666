import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../config/errors.js';
import type { WorkerConfig } from '../config/worker.js';
import type { ContainerRuntime } from '../executors/index.js';
import type { RedisConnection } from '../jobs/connection.js';
import { coerceError } from '../jobs/errors.js';
import type { JobSpec } from '../jobs/spec.js';
import { checkPolicy, hostPathsOf, type PolicyOutcome } from '../policy/check.js';
import type { NeverAllowed } from '../policy/host-paths.js';
import { type AllowedPath, type Policy, PolicyError, parsePolicy } from '../policy/policy.js';
import { type MountPin, mountPins } from './mount-pins.js';
import { resolvedOrWritten, resolveHostPaths } from './path-facts.js';

/** The engine's default socket; also resolved, since /var/run is usually a link to /run. */
const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';
/**
 * The sockets of the other runtimes a host may run beside the worker's (each is root on the host
 * to whoever can write to it): rootful Podman's default service socket and containerd's.
 */
const OTHER_ENGINE_SOCKETS = ['/run/podman/podman.sock', '/run/containerd/containerd.sock'];
/**
 * Where the engines keep image layers, containers' file systems and their run state by default,
 * whichever runtime this worker uses (the runtime's own answer, dataPaths(), is added at start):
 * Docker's data and exec roots (the latter holds its own containerd's socket), Podman and CRI-O's
 * storage and run roots, containerd's.
 */
const ENGINE_DATA_ROOTS = [
  '/var/lib/docker',
  '/run/docker',
  '/var/lib/containers',
  '/run/containers',
  '/var/lib/containerd',
  '/run/containerd',
];
/** How long the worker asks Redis where it keeps its data before going on without knowing. */
const REDIS_DIR_TIMEOUT_MS = 2_000;

/** The policy as this worker applies it: prefixes resolved on its host, and the paths never allowed. */
export interface WorkerPolicy {
  readonly policy: Policy;
  readonly neverAllowed: NeverAllowed[];
  /** The file it came from, or "(defaults)". */
  readonly source: string;
  /** The check for one job, with its host paths resolved now. */
  check(spec: JobSpec): Promise<AdmissionOutcome>;
}

/** The policy's outcome, and what each mount's host path named when it was checked. */
export interface AdmissionOutcome extends PolicyOutcome {
  pins: MountPin[];
}

async function readPolicyFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(
      `STEVEDORE_POLICY=${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)}): point it at a YAML or JSON policy file, or unset it for the safe defaults`,
    );
  }
  try {
    return parseYaml(text); // JSON is YAML too
  } catch (error) {
    throw new ConfigError(`STEVEDORE_POLICY=${path} is not YAML or JSON: ${coerceError(error).message}`);
  }
}

async function resolvePrefixes(prefixes: AllowedPath[]): Promise<AllowedPath[]> {
  return Promise.all(prefixes.map(async (p) => ({ ...p, hostPath: await resolvedOrWritten(p.hostPath) })));
}

/** The paths no job may touch, each as written and as resolved on this host. */
export async function neverAllowedPaths(config: WorkerConfig): Promise<NeverAllowed[]> {
  const named: NeverAllowed[] = [{ path: '/', what: 'the host root' }];
  const fromHost = config.dockerHost?.startsWith('unix://')
    ? config.dockerHost.slice('unix://'.length)
    : undefined;
  for (const socket of [DEFAULT_DOCKER_SOCKET, fromHost, config.podmanSocket, ...OTHER_ENGINE_SOCKETS]) {
    if (socket) named.push({ path: socket, what: 'the engine socket' });
  }
  for (const root of ENGINE_DATA_ROOTS) named.push({ path: root, what: 'the engine data root' });
  named.push(
    { path: config.stateDir, what: "the worker's state dir" },
    { path: config.logDir, what: "the worker's log dir" },
    { path: join(config.stateDir, 'redis'), what: 'the Redis data dir' },
    // Read whether or not it is there: a file put there later holds credentials too.
    { path: config.registryAuth.path, what: 'the registry credentials file' },
  );
  if (config.policyPath) named.push({ path: config.policyPath, what: 'the policy file' });
  if (config.trustedKeysDir) named.push({ path: config.trustedKeysDir, what: 'the trusted-keys directory' });
  if (config.singularity.sifCache) named.push({ path: config.singularity.sifCache, what: 'the SIF cache' });
  const tls = config.redisTls;
  if (tls?.ca) named.push({ path: tls.ca, what: 'the Redis TLS CA file' });
  if (tls?.cert) named.push({ path: tls.cert, what: 'the Redis TLS certificate' });
  if (tls?.key) named.push({ path: tls.key, what: 'the Redis TLS key' });
  const gatewayTls = config.gateway?.tls;
  if (gatewayTls) {
    named.push({ path: gatewayTls.cert, what: 'the gateway TLS certificate' });
    named.push({ path: gatewayTls.key, what: 'the gateway TLS key' });
  }
  return withResolved(named);
}

/** Each path as written and, where it differs, as resolved on this host. */
async function withResolved(named: readonly NeverAllowed[]): Promise<NeverAllowed[]> {
  const all: NeverAllowed[] = [];
  for (const n of named) {
    all.push(n);
    const real = await resolvedOrWritten(n.path);
    if (real !== n.path) all.push({ path: real, what: n.what });
  }
  return all;
}

/**
 * Where the runtime in use keeps its own data, as it says (Docker's DockerRootDir, Podman's graph
 * root, Apptainer's SIF cache): never allowed. A runtime that does not answer leaves the defaults
 * (ENGINE_DATA_ROOTS), and the worker says so.
 */
export async function engineDataPaths(
  runtime: Pick<ContainerRuntime, 'dataPaths' | 'kind'>,
  log: Logger,
): Promise<NeverAllowed[]> {
  try {
    const paths = await runtime.dataPaths();
    return withResolved(paths.map((path) => ({ path, what: `the ${runtime.kind} data root` })));
  } catch (error) {
    log.warn(
      { err: error },
      `could not ask ${runtime.kind} where it keeps its data; only the default data roots are denied to jobs`,
    );
    return [];
  }
}

/** How many devices a visible-devices variable lists; undefined when it lists none (the engine picks). */
function listedDevices(value: string | undefined): number | undefined {
  const ids = (value ?? '').split(',').filter((id) => id.trim() !== '');
  return ids.length > 0 ? ids.length : undefined;
}

/**
 * Reads STEVEDORE_POLICY (YAML or JSON) once, at start: a file that cannot be read, an unknown
 * key or a bad value stops the worker with a ConfigError naming the key.
 */
export async function loadWorkerPolicy(config: WorkerConfig): Promise<WorkerPolicy> {
  const source = config.policyPath ?? '(defaults)';
  const input = config.policyPath ? await readPolicyFile(config.policyPath) : undefined;
  let parsed: Policy;
  try {
    parsed = parsePolicy(input, config.policyPath ? `STEVEDORE_POLICY=${config.policyPath}` : '(defaults)');
  } catch (error) {
    if (error instanceof PolicyError) throw new ConfigError(error.message);
    throw error;
  }
  const policy: Policy = {
    ...parsed,
    mounts: await resolvePrefixes(parsed.mounts),
    imageTarballs: await resolvePrefixes(parsed.imageTarballs),
  };
  const neverAllowed = await neverAllowedPaths(config);
  const gpus = {
    cuda: listedDevices(config.cudaVisibleDevices),
    rocm: listedDevices(config.amdVisibleDevices),
  };
  return {
    policy,
    neverAllowed,
    source,
    check: async (spec) => {
      const resolved = await resolveHostPaths(hostPathsOf(spec));
      const paths = new Map([...resolved].map(([path, r]) => [path, r.fact]));
      const outcome = checkPolicy(spec, policy, { paths, neverAllowed, gpus });
      return { ...outcome, pins: mountPins(spec.mounts, resolved) };
    },
  };
}

/**
 * Where Redis keeps its data (`CONFIG GET dir`), when this Redis says: on this host that
 * directory is never allowed either. A Redis that refuses (ACL, renamed CONFIG) or is slow is skipped.
 */
export async function redisDataDir(redis: RedisConnection): Promise<NeverAllowed[]> {
  let timer: NodeJS.Timeout | undefined;
  const answer = await Promise.race([
    (redis.config('GET', 'dir') as Promise<string[]>).catch(() => []),
    new Promise<string[]>((resolve) => {
      timer = setTimeout(() => resolve([]), REDIS_DIR_TIMEOUT_MS);
    }),
  ]);
  clearTimeout(timer);
  const dir = answer[1];
  if (!dir?.startsWith('/')) return [];
  const real = await resolvedOrWritten(dir);
  const what = 'the Redis data dir';
  return real === dir
    ? [{ path: dir, what }]
    : [
        { path: dir, what },
        { path: real, what },
      ];
}
