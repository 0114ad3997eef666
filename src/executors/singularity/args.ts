import type { ExecutorSpec } from '../executor.js';
import { DEFAULT_PIDS_LIMIT, MIN_MEMORY_BYTES } from '../limits.js';
import { ENV_SCRIPT_PATH, envScript } from './env-script.js';
import { type HardeningFacts, hardeningArgs } from './hardening.js';
import { mountArg } from './mounts.js';

/** Which program runs the containers: Apptainer, or SingularityCE 3.x (its older spelling of a few things). */
export type SingularityFlavour = 'apptainer' | 'singularity';

/** CFS period for a CPU quota: the kernel's and Docker's default (100 ms). */
export const CPU_PERIOD_US = 100_000;
/** The only PATH the runtime program gets: it finds its helpers (mksquashfs, CNI plugins) there; nothing of the worker's. */
export const RUNTIME_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** What the mapping needs to know about this host. */
export interface SingularityHostFacts {
  flavour: SingularityFlavour;
  /** The converted image to run. */
  sifPath: string;
  /** How jobs are confined on this host (hardening.ts). */
  hardening: HardeningFacts;
  /** Host file the job's env script (env-script.ts) is written to; Apptainer only. */
  envScriptPath: string;
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
  /** What to write to facts.envScriptPath before the program starts; null: no script (SingularityCE). */
  envScript: string | null;
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
 * home bound), the confinement of hardening.ts, the spec's env only, binds as `--mount` values
 * (mounts.ts), network, GPU flags, then the SIF and the command.
 * CPU, memory and pids limits are not flags here: Apptainer's `--cpus`/`--memory` move the
 * container into a cgroup of Apptainer's own that it deletes at exit, so the final usage would be
 * lost; the same limits go into the job's cgroup, which the container runs in from its start.
 */
export function toSingularityArgs(spec: ExecutorSpec, facts: SingularityHostFacts): SingularityCommand {
  const args = ['exec', '--containall', '--cleanenv', '--no-home', ...hardeningArgs(facts.hardening)];
  const env: Record<string, string> = { PATH: RUNTIME_PATH };
  if (spec.init === false) args.push('--no-init');
  // Apptainer would start in $HOME; an image without a WORKDIR starts in / on Docker.
  args.push('--pwd', spec.workingDir && spec.workingDir !== '.' ? spec.workingDir : '/');

  const containerEnv: Record<string, string> = { ...spec.env };
  const gpu = spec.gpu && spec.gpu.deviceCount > 0 ? spec.gpu : undefined;
  if (gpu?.stack === 'cuda') {
    args.push('--nv');
    containerEnv.CUDA_VISIBLE_DEVICES = deviceIds(facts.cudaVisibleDevices, gpu.deviceCount);
  } else if (gpu?.stack === 'rocm') {
    args.push('--rocm');
    containerEnv.ROCR_VISIBLE_DEVICES = deviceIds(facts.amdVisibleDevices, gpu.deviceCount);
  }
  for (const [name, value] of Object.entries(containerEnv).sort(([a], [b]) => a.localeCompare(b))) {
    // SingularityCE 3.x has no --env; both read SINGULARITYENV_*, Apptainer prefers --env.
    if (facts.flavour === 'apptainer') args.push('--env', `${name}=${value}`);
    else env[`SINGULARITYENV_${name}`] = value;
  }

  for (const [inside, mount] of Object.entries(spec.bindMounts).sort(([a], [b]) => a.localeCompare(b))) {
    args.push('--mount', mountArg(mount.hostPath, inside, mount.readOnly));
  }
  // The env script's action script is Apptainer's; SingularityCE's differs and is not checked.
  const script =
    facts.flavour === 'apptainer' ? envScript(Object.keys(containerEnv), gpu !== undefined) : null;
  if (script !== null) args.push('--mount', mountArg(facts.envScriptPath, ENV_SCRIPT_PATH, true));

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
  return { args, env, limits, notApplied, envScript: script };
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
  if (spec.ramBytes > 0) wanted.memoryBytes = Math.max(spec.ramBytes, MIN_MEMORY_BYTES);
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
