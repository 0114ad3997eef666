import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { coerceError, InfrastructureError } from '../../jobs/errors.js';
import type { ExecutorSpec } from '../executor.js';
import { type SingularityCommand, toSingularityArgs } from './args.js';
import { JobCgroup } from './cgroup.js';
import type { SingularityRuntime } from './runtime.js';

/** Parent of every job's own cgroup (each hierarchy); apart from the Docker runtime's /stevedore/<uuid>, which its sweep removes when empty. */
const CGROUP_PARENT = '/stevedore/singularity';

/** What create() makes ready before anything runs: the job's cgroup with its limits, the argv, the env script. */
export interface PreparedContainer {
  cgroup: JobCgroup | { unavailable: string };
  command: SingularityCommand;
  /** The env script written for the job (env-script.ts); absent when it needs none. */
  envScriptPath?: string;
}

/**
 * Makes container `id` ready to start from the SIF at `sifPath`: its own cgroup with the spec's
 * limits (or why it has none), the `apptainer exec` argv, and the env script. On failure it
 * leaves nothing behind, and says which step failed.
 */
export async function prepareContainer(
  rt: SingularityRuntime,
  spec: ExecutorSpec,
  made: { id: string; sifPath: string },
  log: Logger,
): Promise<PreparedContainer> {
  const base = spec.cgroupParent ? `/${spec.cgroupParent.replace(/^\/+|\/+$/g, '')}` : CGROUP_PARENT;
  const cgroup = await JobCgroup.make(`${base}/${made.id}`, rt.options.cgroupRoot);
  const envScriptPath = join(rt.envScriptDir, `${made.id}.sh`);
  const command = toSingularityArgs(spec, {
    flavour: rt.bin.flavour,
    sifPath: made.sifPath,
    hardening: rt.hardening,
    envScriptPath,
    cgroups:
      cgroup instanceof JobCgroup ? { available: true } : { available: false, why: cgroup.unavailable },
    cudaVisibleDevices: rt.options.visibleDevices?.cuda,
    amdVisibleDevices: rt.options.visibleDevices?.amd,
  });
  const undo = async (): Promise<void> => {
    if (!(cgroup instanceof JobCgroup)) return;
    await cgroup
      .remove()
      .catch((error: unknown) =>
        log.warn({ containerId: made.id, err: error }, 'could not remove the job cgroup of a failed create'),
      );
  };
  if (cgroup instanceof JobCgroup) {
    try {
      await cgroup.apply(command.limits);
    } catch (error) {
      await undo();
      throw new InfrastructureError(
        'creating',
        `cannot set limits on cgroup ${cgroup.path}: ${coerceError(error).message}`,
        { cause: error },
      );
    }
  }
  for (const note of command.notApplied) log.warn({ containerId: made.id }, `limit not applied: ${note}`);
  if (command.envScript === null) return { cgroup, command };
  try {
    await writeFile(envScriptPath, command.envScript, { mode: 0o644 });
  } catch (error) {
    await rm(envScriptPath, { force: true });
    await undo();
    throw new InfrastructureError(
      'creating',
      `cannot write the job's env script ${envScriptPath}: ${coerceError(error).message}`,
      { cause: error },
    );
  }
  return { cgroup, command, envScriptPath };
}
