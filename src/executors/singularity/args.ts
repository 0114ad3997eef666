import { DEFAULT_PIDS_LIMIT, type ExecutorSpec } from '../executor.js';

/** Which program runs the containers: Apptainer, or SingularityCE 3.x (its older spelling of a few things). */
export type SingularityFlavour = 'apptainer' | 'singularity';

/**
 * The least memory a limit may be: Apptainer's starter and a shell need about this much before the
 * job's own program runs (a lower limit kills the container before it starts). Docker's floor
 * (DOCKER_MIN_MEMORY_BYTES) is the same figure, so one spec means the same on both.
 */
export const SINGULARITY_MIN_MEMORY_BYTES = 6 * 1024 * 1024;
/** CFS period for a CPU quota: the kernel's and Docker's default (100 ms). */
export const CPU_PERIOD_US = 100_000;
/** The only PATH the runtime program gets: it finds its helpers (mksquashfs, CNI plugins) there; nothing of the worker's. */
export const RUNTIME_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** What the mapping needs to know about this host. */
export interface SingularityHostFacts {
  flavour: SingularityFlavour;
  /** The converted image to run. */
  sifPath: string;
  /** Whether the job's own cgroup could be made: the limits are written there (see cgroup.ts). */
  cgroups: { available: true } | { available: false; why: string };
  /** The worker's GPU selection (CUDA_VISIBLE_DEVICES, AMD_VISIBLE_DEVICES): ids to choose from. */
  cudaVisibleDevices?: string;
  amdVisibleDevices?: string;
}

/** Limits for the job's cgroup; absent = no limit. */
export interface CgroupLimits {
  cpuQuotaUs?: number;
  cpuPeriodUs?: number;
  memoryBytes?: number;
  pidsMax?: number;
}

export interface SingularityCommand {
  /** Arguments after the program's name (`exec …`). */
  args: string[];
  /** The whole environment of the runtime program: PATH and the container's variables, nothing else. */
  env: Record<string, string>;
  /** What the job's cgroup must hold before the program starts. */
  limits: CgroupLimits;
  /** Limits the spec asks for that cannot be applied on this host, each with why (for the result). */
  notApplied: string[];
}

function deviceIds(visible: string | undefined, count: number): string {
  const listed = (visible ?? '')
    .split(',')
    .map((id) => id.trim())
    .filter((id) => id !== '');
  const ids = listed.length > 0 ? listed : Array.from({ length: count }, (_, i) => String(i));
  return ids.slice(0, count).join(',');
}

/**
 * The command line that runs `spec` (crunch-run's singularity executor maps it the same way):
 * `exec --containall --cleanenv --no-home` (own PID, IPC and mount namespaces, no host env, no
 * home bound), the spec's env only, binds, network, GPU flags, then the SIF and the command.
 * CPU, memory and pids limits are not flags here: Apptainer's `--cpus`/`--memory` move the
 * container into a cgroup of Apptainer's own that it deletes at exit, so the final usage would be
 * lost; the same limits go into the job's cgroup, which the container runs in from its start.
 */
export function toSingularityArgs(spec: ExecutorSpec, facts: SingularityHostFacts): SingularityCommand {
  const args = ['exec', '--containall', '--cleanenv', '--no-home'];
  const env: Record<string, string> = { PATH: RUNTIME_PATH };
  if (spec.init === false) args.push('--no-init');
  // Apptainer would start in $HOME; an image without a WORKDIR starts in / on Docker.
  args.push('--pwd', spec.workingDir && spec.workingDir !== '.' ? spec.workingDir : '/');

  const containerEnv: Record<string, string> = { ...spec.env };
  if (spec.gpu && spec.gpu.deviceCount > 0) {
    if (spec.gpu.stack === 'cuda') {
      args.push('--nv');
      containerEnv.CUDA_VISIBLE_DEVICES = deviceIds(facts.cudaVisibleDevices, spec.gpu.deviceCount);
    } else {
      args.push('--rocm');
      containerEnv.ROCR_VISIBLE_DEVICES = deviceIds(facts.amdVisibleDevices, spec.gpu.deviceCount);
    }
  }
  for (const [name, value] of Object.entries(containerEnv).sort(([a], [b]) => a.localeCompare(b))) {
    // SingularityCE 3.x has no --env; both read SINGULARITYENV_*, Apptainer prefers --env.
    if (facts.flavour === 'apptainer') args.push('--env', `${name}=${value}`);
    else env[`SINGULARITYENV_${name}`] = value;
  }

  for (const [inside, mount] of Object.entries(spec.bindMounts).sort(([a], [b]) => a.localeCompare(b))) {
    args.push('--bind', `${mount.hostPath}:${inside}${mount.readOnly ? ':ro' : ''}`);
  }

  if (!spec.enableNetwork) args.push('--net', '--network', 'none');
  else if (spec.networkMode === 'host') {
    // No --net: the host's own network namespace.
  } else {
    // Docker's "default"/"bridge" is Apptainer's CNI network "bridge"; any other name is a CNI network.
    const mode = spec.networkMode ?? 'default';
    args.push('--net', '--network', mode === 'default' ? 'bridge' : mode);
  }

  const { limits, notApplied } = limitsOf(spec, facts);
  args.push(facts.sifPath, ...spec.command);
  return { args, env, limits, notApplied };
}

function limitsOf(
  spec: ExecutorSpec,
  facts: SingularityHostFacts,
): { limits: CgroupLimits; notApplied: string[] } {
  const wanted: CgroupLimits = {};
  if (spec.vcpus > 0) {
    wanted.cpuPeriodUs = CPU_PERIOD_US;
    wanted.cpuQuotaUs = Math.round(spec.vcpus * CPU_PERIOD_US);
  }
  if (spec.ramBytes > 0) wanted.memoryBytes = Math.max(spec.ramBytes, SINGULARITY_MIN_MEMORY_BYTES);
  wanted.pidsMax = spec.pidsLimit ?? DEFAULT_PIDS_LIMIT;
  if (facts.cgroups.available) return { limits: wanted, notApplied: [] };
  const why = facts.cgroups.why;
  const notApplied = [
    wanted.cpuQuotaUs !== undefined ? `vcpus ${spec.vcpus}: ${why}` : null,
    wanted.memoryBytes !== undefined ? `ram ${spec.ramBytes} bytes: ${why}` : null,
    wanted.pidsMax !== undefined ? `pidsLimit ${wanted.pidsMax}: ${why}` : null,
  ].filter((n): n is string => n !== null);
  return { limits: {}, notApplied };
}
