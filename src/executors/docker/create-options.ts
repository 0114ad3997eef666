import type { ContainerCreateOptions, DeviceRequest, MountSettings } from 'dockerode';
import type { ExecutorSpec } from '../executor.js';
import { DEFAULT_PIDS_LIMIT, MIN_MEMORY_BYTES } from '../limits.js';
import type { NetnsHolder } from './netns/holders.js';

/** CFS period used to express vcpus as a quota, the kernel's default of 100 ms. */
export const CPU_PERIOD_US = 100_000;
/** The engine rejects a CPU quota below 1 ms. */
const MIN_CPU_QUOTA_US = 1_000;
const NVIDIA_CAPABILITIES = ['gpu', 'nvidia', 'compute', 'utility'];
/**
 * Dropped from the engine's default set for every job, with no way to add them back: a batch job
 * has no use for them, and each is a step in known escapes or attacks on the host's network.
 * NET_RAW: raw and packet sockets (ARP/DNS spoofing on the bridge; ping needs it). MKNOD: device
 * nodes. AUDIT_WRITE: lines in the host's audit log. SETFCAP / SETPCAP: file capabilities and
 * others' capability sets. SYS_CHROOT: chroot. Kept, since `chown`, `su` and apt inside a
 * container need them: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, SETUID, SETGID, KILL, NET_BIND_SERVICE.
 */
export const DROPPED_CAPABILITIES = ['NET_RAW', 'MKNOD', 'AUDIT_WRITE', 'SETFCAP', 'SETPCAP', 'SYS_CHROOT'];
/**
 * The engine keeps every byte of output itself, so a container that outlives its worker is
 * replayed byte-exact to the next one; `none` is faster but loses what nobody attached saw.
 */
export const DEFAULT_LOG_DRIVER = 'local';

/** Facts about the host that the mapping needs; gathered by the caller so the mapping stays pure. */
export interface DockerHostFacts {
  /** The worker's CUDA_VISIBLE_DEVICES, when set: the device ids handed to the container. */
  cudaVisibleDevices?: string;
  /** The worker's AMD_VISIBLE_DEVICES, when set: indices into `renderDevices`. */
  amdVisibleDevices?: string;
  /** Existing /dev/dri/renderD* nodes with their owning group id, sorted by path. */
  renderDevices?: { path: string; gid: number }[];
  /** Owning group id of /dev/kfd. */
  kfdGid?: number;
}

export interface DockerNaming {
  name?: string;
  labels?: Record<string, string>;
  /** Log driver for the container; DEFAULT_LOG_DRIVER when absent. */
  logDriver?: string;
  /** A job without network joins this holder's namespace instead of getting one of its own. */
  netnsHolder?: Pick<NetnsHolder, 'id' | 'files'>;
  /**
   * The id of the image loadImage() found for spec.image: the container runs exactly that one,
   * even if the tag moves before create. The reference stays on the container as IMAGE_LABEL.
   */
  imageId?: string;
}

/** The image reference a container was made for (its Config.Image is the image's id). */
export const IMAGE_LABEL = 'stevedore.image';

/**
 * A bind mount as a structured Mounts entry, never a `source:target:mode` string: a path with
 * `:` or `,` stays a path and cannot smuggle in options such as propagation.
 */
function bindMount(source: string, target: string, readOnly: boolean): MountSettings {
  return { Type: 'bind', Source: source, Target: target, ReadOnly: readOnly };
}

/**
 * The network files a holder's jobs see, bound read-only so that no job changes them for the
 * next. Binds, not Mounts: these are the engine's own paths, and a holder that ended meanwhile
 * must fail at start (which names the holder, so the executor makes the container again with a
 * live one) rather than at create, where Mounts check that the source exists.
 */
function holderFileBinds(holder: Pick<NetnsHolder, 'files'>, taken: Set<string>): string[] {
  return holderFiles(holder, taken).map(({ source, target }) => `${source}:${target}:ro`);
}

/**
 * The holder's network files a job sees read-only, each at its place in the job, as data (the
 * engine's own paths, never the spec's). A bind mount of the spec's own at one of these paths wins.
 */
export function holderFiles(
  holder: Pick<NetnsHolder, 'files'>,
  taken: Set<string>,
): { source: string; target: string }[] {
  const files: [string, string][] = [
    ['/etc/hosts', holder.files.hosts],
    ['/etc/hostname', holder.files.hostname],
    ['/etc/resolv.conf', holder.files.resolvConf],
  ];
  return files
    .filter(([target, source]) => source && !taken.has(target))
    .map(([target, source]) => ({ source, target }));
}

/** A comma-separated device list (CUDA_VISIBLE_DEVICES, AMD_VISIBLE_DEVICES) as its entries. */
export function splitDeviceList(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/**
 * `count` NVIDIA devices: the first `count` of the worker's CUDA_VISIBLE_DEVICES when it lists
 * them, else any `count` the engine picks (DeviceRequests Count). Never every device: the policy's
 * maxGpus bounds the count, so the count is what a job gets.
 */
function cudaDeviceRequest(count: number, facts: DockerHostFacts): DeviceRequest {
  const ids = splitDeviceList(facts.cudaVisibleDevices);
  const request: DeviceRequest = { Driver: 'nvidia', Capabilities: [NVIDIA_CAPABILITIES] };
  if (ids.length > 0) request.DeviceIDs = ids.slice(0, count);
  else request.Count = count;
  return request;
}

/** The first `count` render devices of the worker's selection (AMD_VISIBLE_DEVICES, else all), and /dev/kfd. */
export function rocmDevices(count: number, facts: DockerHostFacts): { devices: string[]; groups: number[] } {
  const all = facts.renderDevices ?? [];
  const wanted = splitDeviceList(facts.amdVisibleDevices);
  const chosen = (
    wanted.length === 0
      ? all
      : wanted.map((i) => all[Number(i)]).filter((d): d is { path: string; gid: number } => d !== undefined)
  ).slice(0, count);
  const groups = new Set<number>(chosen.map((d) => d.gid));
  if (facts.kfdGid !== undefined) groups.add(facts.kfdGid);
  return { devices: ['/dev/kfd', ...chosen.map((d) => d.path)], groups: [...groups].sort((a, b) => a - b) };
}

/** A positive whole number of processes; anything else is the safe default, never "unlimited" (0 or -1 to the engine). */
export function jobPidsLimit(limit: number | undefined): number {
  return limit !== undefined && Number.isInteger(limit) && limit > 0 ? limit : DEFAULT_PIDS_LIMIT;
}

/** The CFS quota (per CPU_PERIOD_US) for `vcpus` > 0: never below what the engine accepts. */
export function jobCpuQuotaUs(vcpus: number): number {
  return Math.max(MIN_CPU_QUOTA_US, Math.round(vcpus * CPU_PERIOD_US));
}

/** The memory limit for `ramBytes` > 0: raised to MIN_MEMORY_BYTES, the floor of every runtime. */
export function jobMemoryBytes(ramBytes: number): number {
  return Math.max(MIN_MEMORY_BYTES, Math.floor(ramBytes));
}

/** Where the work happens: the spec's working dir, or '' for the image's own (empty or '.'). */
export function jobWorkingDir(spec: Pick<ExecutorSpec, 'workingDir'>): string {
  return spec.workingDir === undefined || spec.workingDir === '.' ? '' : spec.workingDir;
}

/** Maps a runtime-neutral spec to the Docker Engine API's container create body. Pure. */
export function toDockerCreateOptions(
  spec: ExecutorSpec,
  naming: DockerNaming = {},
  facts: DockerHostFacts = {},
): ContainerCreateOptions {
  const hasStdin = spec.stdin !== undefined;
  const workingDir = jobWorkingDir(spec);
  const mounts = Object.entries(spec.bindMounts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([target, m]) => bindMount(m.hostPath, target, m.readOnly));

  const holder = spec.enableNetwork ? undefined : naming.netnsHolder;
  const binds = holder ? holderFileBinds(holder, new Set(Object.keys(spec.bindMounts))) : [];
  const hostConfig: NonNullable<ContainerCreateOptions['HostConfig']> = {
    NetworkMode: spec.enableNetwork
      ? spec.networkMode || 'default'
      : holder
        ? `container:${holder.id}`
        : 'none',
    Mounts: mounts,
    Binds: binds,
    LogConfig: { Type: naming.logDriver ?? DEFAULT_LOG_DRIVER, Config: {} },
    // An init as PID 1 forwards SIGTERM to the program (a bare PID 1 ignores it without a
    // handler, so every stop would wait out the grace) and reaps zombies.
    Init: spec.init ?? true,
    // Never AutoRemove: a late wait() would get 404 and the exit state (OOMKilled) would be lost.
    AutoRemove: false,
    // Always on, whatever the spec says: no process gains privileges (setuid, file capabilities),
    // no capability is added and some are dropped, never privileged, and the processes (and
    // threads) are bounded so a fork bomb cannot take the host's pid space.
    SecurityOpt: ['no-new-privileges'],
    Privileged: false,
    CapAdd: [],
    CapDrop: [...DROPPED_CAPABILITIES],
    PidsLimit: jobPidsLimit(spec.pidsLimit),
  };
  if (spec.vcpus > 0) {
    hostConfig.CpuPeriod = CPU_PERIOD_US;
    hostConfig.CpuQuota = jobCpuQuotaUs(spec.vcpus);
  }
  if (spec.ramBytes > 0) {
    const memory = jobMemoryBytes(spec.ramBytes);
    hostConfig.Memory = memory;
    hostConfig.MemorySwap = memory; // memory+swap = memory: the container gets no swap
  }
  if (spec.cgroupParent) hostConfig.CgroupParent = spec.cgroupParent;
  if (spec.gpu && spec.gpu.deviceCount > 0) {
    if (spec.gpu.stack === 'cuda') {
      hostConfig.DeviceRequests = [cudaDeviceRequest(spec.gpu.deviceCount, facts)];
    } else {
      const { devices, groups } = rocmDevices(spec.gpu.deviceCount, facts);
      hostConfig.Devices = devices.map((d) => ({
        PathOnHost: d,
        PathInContainer: d,
        CgroupPermissions: 'rwm',
      }));
      hostConfig.GroupAdd = groups.map(String);
    }
  }

  const options: ContainerCreateOptions = {
    Image: naming.imageId ?? spec.image,
    Cmd: spec.command,
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    WorkingDir: workingDir,
    Labels: { ...(naming.labels ?? {}), [IMAGE_LABEL]: spec.image },
    Tty: false,
    AttachStdout: true,
    AttachStderr: true,
    AttachStdin: hasStdin,
    OpenStdin: hasStdin,
    // Close the container's stdin when the attached client closes its side, so the program sees EOF.
    StdinOnce: hasStdin,
    HostConfig: hostConfig,
  };
  if (naming.name) options.name = naming.name;
  return options;
}
