import {
  CPU_PERIOD_US,
  type DockerHostFacts,
  type DockerNaming,
  DROPPED_CAPABILITIES,
  holderFiles,
  IMAGE_LABEL,
  jobCpuQuotaUs,
  jobMemoryBytes,
  jobPidsLimit,
  jobWorkingDir,
  rocmDevices,
  splitDeviceList,
} from '../docker/index.js';
import type { ExecutorSpec } from '../executor.js';

/**
 * The PATH a job gets when neither its image nor its spec sets one: Docker's (the daemon adds it
 * first, then the image's and the container's env replace it) and libpod's default alike.
 */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** A bind mount in libpod's SpecGenerator (an OCI runtime-spec Mount): every field is data. */
export interface LibpodMount {
  type: 'bind';
  source: string;
  destination: string;
  options: string[];
}

/** A namespace in libpod's SpecGenerator (pkg/specgen/namespaces.go). */
export interface LibpodNamespace {
  nsmode: 'bridge' | 'host' | 'none' | 'container' | 'path';
  value?: string;
}

/**
 * The body of `POST /v4.0.0/libpod/containers/create` (Podman 4.3's pkg/specgen/specgen.go), as
 * much of it as a job sets. The JSON names are libpod's; Go ignores a misspelt one silently, so
 * each was checked against a real Podman 4.3.1 (inspect, /proc/self/status, cgroup files).
 */
export interface LibpodCreateSpec {
  name?: string;
  image: string;
  command: string[];
  /** With unsetenvall: exactly this, nothing from containers.conf (`container`, `TERM`). */
  env: Record<string, string>;
  unsetenvall: true;
  labels: Record<string, string>;
  work_dir?: string;
  terminal: false;
  stdin: boolean;
  log_configuration: { driver: string };
  init: boolean;
  init_path?: string;
  /** 0: a forced removal kills at once, as Docker's does (libpod's default waits 10 s after SIGTERM). */
  stop_timeout: number;
  remove: false;
  mounts: LibpodMount[];
  netns: LibpodNamespace;
  /** Named networks to join (bridge mode); libpod's field has no JSON tag, hence the capital. */
  Networks?: Record<string, Record<string, never>>;
  privileged: false;
  cap_add: string[];
  cap_drop: string[];
  no_new_privileges: true;
  resource_limits: {
    pids: { limit: number };
    memory?: { limit: number; swap: number };
    cpu?: { quota: number; period: number };
  };
  cgroup_parent?: string;
  devices?: { path: string }[];
  groups?: string[];
}

/** What the libpod mapping needs beyond Docker's host facts; gathered by the caller so it stays pure. */
export interface PodmanCreateFacts extends DockerHostFacts {
  /** The image's own env (its config's `Env`, `K=V`): kept beneath the spec's, as Docker keeps it. */
  imageEnv?: readonly string[];
  /** A static init on the host (tini, Docker's docker-init) for `init`; Podman's catatonit when absent. */
  initPath?: string;
}

/** A job's network as a libpod namespace: the Docker mode names, said in libpod's words. */
function networkOf(
  spec: ExecutorSpec,
  holderId: string | undefined,
): Pick<LibpodCreateSpec, 'netns' | 'Networks'> {
  if (!spec.enableNetwork) {
    return { netns: holderId ? { nsmode: 'container', value: holderId } : { nsmode: 'none' } };
  }
  const mode = spec.networkMode || 'default';
  if (mode === 'default' || mode === 'bridge') return { netns: { nsmode: 'bridge' } };
  if (mode === 'host' || mode === 'none') return { netns: { nsmode: mode } };
  if (mode.startsWith('container:')) {
    return { netns: { nsmode: 'container', value: mode.slice('container:'.length) } };
  }
  // Any other name is a network the operator made (`podman network create`), as on Docker.
  return { netns: { nsmode: 'bridge' }, Networks: { [mode]: {} } };
}

/** The image's `K=V` entries as a map; an entry without `=` is a name with an empty value. */
function envMap(entries: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of entries) {
    const at = entry.indexOf('=');
    if (at === 0) continue;
    if (at < 0) env[entry] = '';
    else env[entry.slice(0, at)] = entry.slice(at + 1);
  }
  return env;
}

/** GPUs by CDI name (Podman 4.3 has no DeviceRequests): the first `count` of the visible ids, else of all. */
function cudaDevices(count: number, facts: DockerHostFacts): { path: string }[] {
  const ids = splitDeviceList(facts.cudaVisibleDevices);
  const chosen = (ids.length > 0 ? ids : Array.from({ length: count }, (_, i) => String(i))).slice(0, count);
  return chosen.map((id) => ({ path: `nvidia.com/gpu=${id}` }));
}

/**
 * Maps a runtime-neutral spec to libpod's create body, with every hardening that
 * toDockerCreateOptions() gives a Docker job (test/unit/podman-create.test.ts holds the two side
 * by side). Mounts are structured and taken literally: Podman's Docker-compatible create turns
 * them back into a `type=bind,source=…,target=…` string, where a `,` in a path adds options.
 * Pure.
 */
export function toLibpodCreateSpec(
  spec: ExecutorSpec,
  naming: DockerNaming = {},
  facts: PodmanCreateFacts = {},
): LibpodCreateSpec {
  const holder = spec.enableNetwork ? undefined : naming.netnsHolder;
  const mounts: LibpodMount[] = Object.entries(spec.bindMounts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([destination, m]) => ({
      type: 'bind',
      source: m.hostPath,
      destination,
      options: ['rbind', m.readOnly ? 'ro' : 'rw'],
    }));
  if (holder) {
    for (const { source, target } of holderFiles(holder, new Set(Object.keys(spec.bindMounts)))) {
      mounts.push({ type: 'bind', source, destination: target, options: ['rbind', 'ro'] });
    }
  }
  const init = spec.init ?? true;
  const body: LibpodCreateSpec = {
    image: naming.imageId ?? spec.image,
    command: spec.command,
    env: { PATH: DEFAULT_PATH, ...envMap(facts.imageEnv ?? []), ...spec.env },
    unsetenvall: true,
    labels: { ...(naming.labels ?? {}), [IMAGE_LABEL]: spec.image },
    terminal: false,
    stdin: spec.stdin !== undefined,
    log_configuration: { driver: naming.logDriver ?? 'k8s-file' },
    // An init as PID 1 forwards SIGTERM and reaps zombies (see toDockerCreateOptions).
    init,
    stop_timeout: 0,
    remove: false,
    mounts,
    ...networkOf(spec, holder?.id),
    // Always on, whatever the spec says, as on Docker: no new privileges, nothing added, the
    // same capabilities dropped, never privileged, the processes bounded; libpod's default
    // seccomp profile applies (no profile path given).
    privileged: false,
    cap_add: [],
    cap_drop: [...DROPPED_CAPABILITIES],
    no_new_privileges: true,
    resource_limits: { pids: { limit: jobPidsLimit(spec.pidsLimit) } },
  };
  if (init && facts.initPath) body.init_path = facts.initPath;
  if (naming.name) body.name = naming.name;
  const workDir = jobWorkingDir(spec);
  if (workDir) body.work_dir = workDir;
  if (spec.vcpus > 0) body.resource_limits.cpu = { quota: jobCpuQuotaUs(spec.vcpus), period: CPU_PERIOD_US };
  if (spec.ramBytes > 0) {
    const memory = jobMemoryBytes(spec.ramBytes);
    body.resource_limits.memory = { limit: memory, swap: memory }; // memory+swap = memory: no swap
  }
  if (spec.cgroupParent) body.cgroup_parent = spec.cgroupParent;
  if (spec.gpu && spec.gpu.deviceCount > 0) {
    if (spec.gpu.stack === 'cuda') {
      body.devices = cudaDevices(spec.gpu.deviceCount, facts);
    } else {
      const { devices, groups } = rocmDevices(spec.gpu.deviceCount, facts);
      body.devices = devices.map((path) => ({ path }));
      body.groups = groups.map(String);
    }
  }
  return body;
}
