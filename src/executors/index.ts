import type { Logger } from 'pino';
import { RuntimeUnavailableError } from '../jobs/errors.js';
import {
  DockerExecutor,
  type DockerExecutorOptions,
  DockerRuntime,
  type DockerRuntimeOptions,
} from './docker/index.js';
import {
  type ContainerExecutor,
  type ContainerRuntime,
  RUNTIME_KINDS,
  type RuntimeKind,
} from './executor.js';
import { openPodmanRuntime, type PodmanRuntimeOptions } from './podman/index.js';
import { SingularityRuntime, type SingularityRuntimeOptions } from './singularity/runtime.js';
import { SingularityExecutor } from './singularity/singularity-executor.js';

/**
 * The way in for the worker (and anyone who runs jobs the way it does): open the runtime once,
 * then create one executor per job on it.
 */

/** Runtime-specific settings for openRuntime(); only the chosen runtime's are read. */
export interface RuntimeOptions {
  docker?: DockerRuntimeOptions;
  singularity?: SingularityRuntimeOptions;
  /** Podman's socket and service, and the Docker runtime's settings it shares. */
  podman?: PodmanRuntimeOptions;
}

const quoted = RUNTIME_KINDS.map((k) => JSON.stringify(k));
const KINDS = `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}`;

/**
 * Opens the runtime a worker runs its jobs on and checks that it answers. Rejects with a
 * RuntimeUnavailableError saying what is missing and what to do; it never falls back to another
 * runtime. The caller closes what it returns.
 */
export async function openRuntime(
  kind: RuntimeKind,
  options: RuntimeOptions = {},
): Promise<ContainerRuntime> {
  switch (kind) {
    case 'docker': {
      const runtime = new DockerRuntime(options.docker);
      try {
        await runtime.checkAvailable();
        await runtime.tidy();
      } catch (error) {
        await runtime.close();
        throw error;
      }
      return runtime;
    }
    case 'podman':
      return openPodmanRuntime(options.podman);
    case 'singularity':
      return SingularityRuntime.open(options.singularity);
    default:
      throw new RuntimeUnavailableError(JSON.stringify(kind), `unknown runtime; expected ${KINDS}`);
  }
}

export interface ExecutorOptions {
  /** The runtime from openRuntime(), shared by a worker's executors; absent: the executor opens its own. */
  runtime?: ContainerRuntime;
  /** Container name; the runtime picks one when absent. */
  name?: string;
  labels?: Record<string, string>;
  /** Scoped to the job (jobId, attempt); the executor adds containerId. */
  logger?: Logger;
  /** Docker-only settings of this one executor. */
  docker?: Omit<DockerExecutorOptions, 'runtime' | 'name' | 'labels' | 'logger'>;
}

/** Creates the executor for a runtime; one executor runs one container. */
export async function createExecutor(
  kind: RuntimeKind,
  options: ExecutorOptions = {},
): Promise<ContainerExecutor> {
  const { runtime, name, labels, logger } = options;
  if (runtime && runtime.kind !== kind) {
    throw new Error(
      `creating: asked for a ${kind} executor on a ${runtime.kind} runtime; open a ${kind} runtime for it`,
    );
  }
  switch (kind) {
    case 'docker':
      if (runtime && !(runtime instanceof DockerRuntime)) {
        throw new Error(
          'creating: a docker executor needs the DockerRuntime that openRuntime("docker") returns',
        );
      }
      return new DockerExecutor({ ...options.docker, runtime, name, labels, logger });
    case 'podman':
      // Podman's executor is Docker's on the Podman runtime, which holds the socket and service.
      if (!(runtime instanceof DockerRuntime)) {
        throw new Error(
          'creating: a podman executor needs the runtime that openRuntime("podman") returns (it owns the socket and the service)',
        );
      }
      return new DockerExecutor({ ...options.docker, runtime, name, labels, logger });
    case 'singularity':
      if (!(runtime instanceof SingularityRuntime)) {
        throw new Error(
          'creating: a singularity executor needs the SingularityRuntime that openRuntime("singularity") returns',
        );
      }
      return new SingularityExecutor({ runtime, labels, logger });
    default:
      throw new Error(`creating: unknown runtime ${JSON.stringify(kind)}; expected ${KINDS}`);
  }
}

export {
  DockerExecutor,
  type DockerExecutorOptions,
  type DockerHostFacts,
  DockerRuntime,
  type DockerRuntimeOptions,
  toDockerCreateOptions,
} from './docker/index.js';
export type {
  Adoption,
  BindMount,
  ContainerExecutor,
  ContainerRuntime,
  ExecOptions,
  ExecResult,
  ExecutorSpec,
  ExitDetails,
  FinalUsage,
  OutputSink,
  Reattachment,
  RuntimeCapabilities,
  RuntimeContainer,
  RuntimeKind,
  StreamCounts,
  UsageSample,
} from './executor.js';
export { RUNTIME_KINDS } from './executor.js';
export { PodmanRuntime, type PodmanRuntimeOptions, podmanSocketPath } from './podman/index.js';
export { toSingularityArgs } from './singularity/args.js';
export { SingularityRuntime, type SingularityRuntimeOptions } from './singularity/runtime.js';
export { SingularityExecutor } from './singularity/singularity-executor.js';
