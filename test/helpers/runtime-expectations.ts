import { PodmanRuntime } from '../../src/executors/podman/index.js';
import type { ContainerRuntime, RuntimeKind } from '../../src/executors/runtime.js';

/**
 * What the test suites know of each runtime beyond the contract, measured on these machines
 * (docs/pitfalls.md): the suites' knowledge, which production never reads.
 */
export interface RuntimeExpectations {
  /**
   * Variables the runtime sets in every container beside the spec's env; a spec may set them to
   * other values, never take them away. Empty (every runtime today): exactly the spec's.
   */
  addedEnv: readonly string[];
  /** The runtime tells an OOM kill from another SIGKILL; false: such a run reads as signalled (137). */
  reportsOom: boolean;
  /**
   * Exit code of a command that is not in the image, run under the runtime's init: 127 from
   * tini (Docker's, and Podman's when the host has a static tini), which names the command on
   * stderr; 1 from Podman's own catatonit ("failed to exec pid1").
   */
  missingCommandExitCode: number;
}

/** Each runtime as it runs here; Podman under a static tini (see expectationsOf). */
export const RUNTIME_EXPECTATIONS: Record<RuntimeKind, RuntimeExpectations> = {
  docker: { addedEnv: [], reportsOom: true, missingCommandExitCode: 127 },
  // Made through libpod's create (unsetenvall): the env is exactly the job's. Podman 4.3 gives
  // no oom event, and State.OOMKilled stays false after a kernel OOM kill (runc, cgroup v1).
  podman: { addedEnv: [], reportsOom: false, missingCommandExitCode: 127 },
  // OOM from the container's own cgroup (singularity/cgroup.ts oomKilled); Apptainer's own
  // variables (APPTAINER_*, …) vary by version, so the suites match them by pattern instead.
  singularity: { addedEnv: [], reportsOom: true, missingCommandExitCode: 127 },
};

/** What to expect of `runtime` now: a Podman without a static tini runs jobs under catatonit. */
export function expectationsOf(runtime: ContainerRuntime): RuntimeExpectations {
  const expected = RUNTIME_EXPECTATIONS[runtime.kind];
  if (runtime instanceof PodmanRuntime && runtime.init === null)
    return { ...expected, missingCommandExitCode: 1 };
  return expected;
}
