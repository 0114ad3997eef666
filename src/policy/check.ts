import type { JobSpec } from '../jobs/spec.js';
import { TIMEOUT_NAMES, type Timeouts, timeoutField, timeoutsOf } from '../jobs/timeouts.js';
import { hostPathProblem, type NeverAllowed, type PathFact } from './host-paths.js';
import { imageProblem } from './images.js';
import { matchesAny } from './patterns.js';
import { normalizePath, type Policy } from './policy.js';
import { retryDenials } from './retry.js';

/** What the worker found on its host for one job, so the check itself stays pure. */
export interface PolicyFacts {
  /** Every host path the spec names (hostPathsOf), as written → what is there. */
  paths: ReadonlyMap<string, PathFact>;
  neverAllowed: readonly NeverAllowed[];
  /**
   * GPUs the worker hands out by stack, where it lists them (CUDA_VISIBLE_DEVICES,
   * AMD_VISIBLE_DEVICES); absent: the engine picks from what the host has.
   */
  gpus?: { cuda?: number; rocm?: number };
}

/** One broken rule: `message` starts with the field, e.g. `mounts./data.hostPath /etc is not under …`. */
export interface PolicyDenial {
  field: string;
  message: string;
}

export interface PolicyOutcome {
  /**
   * The spec as it runs: host paths resolved, container paths and the working dir normalized
   * (normalizePath), and the policy's defaults for ram, vcpus and timeouts.
   */
  spec: JobSpec;
  /** Empty when the job may run. */
  denials: PolicyDenial[];
}

/**
 * Container paths no mount may cover: the kernel's file systems and the network files the
 * worker binds read-only, which belong to the runtime, not the job.
 */
const RUNTIME_TARGETS = ['/proc', '/sys', '/dev', '/etc/hosts', '/etc/hostname', '/etc/resolv.conf'];
/**
 * A working directory there is a way out: a process started in `/proc/self/fd/<n>` can sit in
 * a host directory the runtime left open (runc CVE-2024-21626), and none of them is a job's.
 */
const KERNEL_DIRS = ['/proc', '/sys', '/dev'];

/** The first of `dirs` that is `path` or holds it (both normalized). */
const coveredBy = (path: string, dirs: readonly string[]): string | undefined =>
  dirs.find((d) => path === d || path.startsWith(`${d}/`));

/** The host paths a spec names, for the worker to resolve before the check. */
export function hostPathsOf(spec: Pick<JobSpec, 'mounts' | 'imageTarball'>): string[] {
  const paths = Object.values(spec.mounts).map((m) => m.hostPath);
  if (spec.imageTarball !== undefined) paths.push(spec.imageTarball);
  return [...new Set(paths)];
}

const usedOldName = (spec: JobSpec): boolean =>
  spec.maxRunTimeSeconds !== undefined && spec.timeouts?.runSeconds === undefined;

function withoutRunSeconds(timeouts: Timeouts): Timeouts {
  const { runSeconds: _run, ...rest } = timeouts;
  return rest;
}

/** The message of a denied job: every broken rule, in spec order. */
export function deniedMessage(denials: readonly PolicyDenial[]): string {
  return `denied by policy: ${denials.map((d) => d.message).join('; ')}`;
}

const list = (values: readonly (string | number)[]): string => values.join(', ') || 'none';

/**
 * The one policy check, between spec parsing and executor create: every rule the spec breaks,
 * and the spec with the policy's defaults applied. A value over a max is denied, never lowered.
 */
export function checkPolicy(spec: JobSpec, policy: Policy, facts: PolicyFacts): PolicyOutcome {
  const denials: PolicyDenial[] = [];
  const deny = (field: string, detail: string): void => {
    denials.push({ field, message: `${field} ${detail}` });
  };
  const factOf = (path: string): PathFact =>
    facts.paths.get(path) ?? { kind: 'unreadable', code: 'not looked up by the worker' };
  const realOf = (path: string): string => {
    const fact = factOf(path);
    return fact.kind === 'real' ? fact.path : path;
  };

  const image = imageProblem(spec.image, policy);
  if (image) deny('image', image);

  if (spec.imageTarball !== undefined) {
    const problem = hostPathProblem(
      spec.imageTarball,
      factOf(spec.imageTarball),
      false,
      policy.imageTarballs,
      facts.neverAllowed,
      'tarball path',
    );
    if (problem) deny('imageTarball', problem);
  }

  // Checked, and passed on, as the engine reads them: Docker takes `/./dev` as `/dev`.
  const workingDir = spec.workingDir === undefined ? undefined : normalizePath(spec.workingDir);
  const kernelDir = workingDir === undefined ? undefined : coveredBy(workingDir, KERNEL_DIRS);
  if (kernelDir)
    deny('workingDir', `${spec.workingDir} is never allowed: ${kernelDir} belongs to the runtime`);

  const mounts: JobSpec['mounts'] = {};
  const writtenAs = new Map<string, string>();
  for (const [target, mount] of Object.entries(spec.mounts)) {
    const inside = normalizePath(target);
    const covered = coveredBy(inside, RUNTIME_TARGETS);
    if (inside === '/')
      deny(`mounts.${target}`, "is never allowed as a container path: it is the container's root /");
    else if (covered)
      deny(`mounts.${target}`, `is never allowed as a container path: ${covered} belongs to the runtime`);
    const twin = writtenAs.get(inside);
    if (twin !== undefined)
      deny(`mounts.${target}`, `is the same container path as mounts.${twin} (${inside})`);
    writtenAs.set(inside, target);
    const problem = hostPathProblem(
      mount.hostPath,
      factOf(mount.hostPath),
      !mount.readOnly,
      policy.mounts,
      facts.neverAllowed,
      'host path',
    );
    if (problem) deny(`mounts.${target}.hostPath`, problem);
    mounts[inside] = { ...mount, hostPath: realOf(mount.hostPath) };
  }

  if (spec.network.enabled) {
    const mode = spec.network.mode ?? 'default';
    if (!matchesAny(policy.networkModes, [mode]))
      deny('network.mode', `${JSON.stringify(mode)} is not in networkModes (${list(policy.networkModes)})`);
  }

  const { resources: limits } = policy;
  const { vcpus, ram, gpus } = spec.resources;
  if (vcpus !== undefined && limits.maxVcpus !== undefined && vcpus > limits.maxVcpus)
    deny('resources.vcpus', `${vcpus} is over maxVcpus ${limits.maxVcpus}`);
  if (ram !== undefined && limits.maxRam !== undefined && ram > limits.maxRam)
    deny('resources.ram', `${ram} bytes is over maxRam ${limits.maxRam} bytes`);
  if (gpus !== undefined && limits.maxGpus !== undefined && gpus.count > limits.maxGpus)
    deny('resources.gpus.count', `${gpus.count} is over maxGpus ${limits.maxGpus}`);
  // A job would get fewer than it asked for, not the count: say so instead.
  const listed = gpus === undefined ? undefined : facts.gpus?.[gpus.stack];
  if (gpus !== undefined && listed !== undefined && gpus.count > listed)
    deny(
      'resources.gpus.count',
      `${gpus.count} is more than the ${listed} ${gpus.stack} GPU${listed === 1 ? '' : 's'} this worker hands out (${gpus.stack === 'cuda' ? 'CUDA_VISIBLE_DEVICES' : 'AMD_VISIBLE_DEVICES'})`,
    );
  const asked = timeoutsOf(spec);
  const timeouts: Timeouts = {};
  for (const name of TIMEOUT_NAMES) {
    const { max, default: fallback } = policy.timeouts[name];
    const value = asked[name];
    if (value !== undefined && max !== undefined && value > max)
      deny(timeoutField(name, spec), `${value} is over the policy's cap ${max} (timeouts.${name}.max)`);
    const applied = value ?? fallback;
    if (applied !== undefined) timeouts[name] = applied;
  }

  for (const denial of retryDenials(spec, policy)) deny(denial.field, denial.detail);

  return {
    spec: {
      ...spec,
      imageTarball: spec.imageTarball === undefined ? undefined : realOf(spec.imageTarball),
      workingDir,
      mounts,
      resources: {
        ...spec.resources,
        vcpus: vcpus ?? limits.defaultVcpus,
        ram: ram ?? limits.defaultRam,
      },
      // maxRunTimeSeconds always carries the run timeout (events.log, older readers); a job that
      // used only the old name keeps it only there, so its result names the field it wrote.
      maxRunTimeSeconds: timeouts.runSeconds,
      timeouts: usedOldName(spec) ? withoutRunSeconds(timeouts) : timeouts,
    },
    denials,
  };
}
