import type { Logger } from 'pino';
import { RuntimeUnavailableError } from '../jobs/errors.js';
import {
  DockerExecutor,
  type DockerExecutorOptions,
  DockerRuntime,
  type DockerRuntimeOptions,
} from './docker/index.js';
import type { ContainerExecutor } from './executor.js';
import { openPodmanRuntime, type PodmanRuntimeOptions } from './podman/index.js';
import { type ContainerRuntime, RUNTIME_KINDS, type RuntimeKind } from './runtime.js';
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
  /** Container name; the runtime picks one when absent. */
  name?: string;
  labels?: Record<string, string>;
  /** Scoped to the job (jobId, attempt); the executor adds containerId. */
  logger?: Logger;
  /** Docker-only settings of this one executor. */
  docker?: Omit<DockerExecutorOptions, 'runtime' | 'name' | 'labels' | 'logger'>;
}

/**
 * Makes the executor of one container on `runtime`, which must be what openRuntime() returned
 * (it holds the connection, caches and service the executor runs on). Throws a
 * RuntimeUnavailableError, saying so, for any other object.
 */
export function createExecutor(runtime: ContainerRuntime, options: ExecutorOptions = {}): ContainerExecutor {
  const { name, labels, logger } = options;
  // Podman's executor is Docker's on the Podman runtime, which holds the socket and the service.
  if ((runtime.kind === 'docker' || runtime.kind === 'podman') && runtime instanceof DockerRuntime) {
    return new DockerExecutor({ ...options.docker, runtime, name, labels, logger });
  }
  if (runtime.kind === 'singularity' && runtime instanceof SingularityRuntime) {
    return new SingularityExecutor({ runtime, labels, logger });
  }
  const kind = JSON.stringify(runtime.kind);
  throw new RuntimeUnavailableError(
    runtime.kind,
    `creating an executor needs a runtime that openRuntime(${kind}) opened (one of ${KINDS}); this one is an instance of ${runtime.constructor.name}`,
  );
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
  ExecOptions,
  ExecResult,
  ExecutorSpec,
  ExitDetails,
  FinalUsage,
  GatewayTarget,
  ImageRequest,
  ImageSpec,
  LoadedImage,
  OutputSink,
  Reattachment,
  StreamCounts,
  UsageSample,
} from './executor.js';
export { PodmanRuntime, type PodmanRuntimeOptions, podmanSocketPath } from './podman/index.js';
export {
  type ContainerRuntime,
  RUNTIME_KINDS,
  type RuntimeCapabilities,
  type RuntimeContainer,
  type RuntimeKind,
} from './runtime.js';
export { toSingularityArgs } from './singularity/args.js';
export { SingularityRuntime, type SingularityRuntimeOptions } from './singularity/runtime.js';
export { SingularityExecutor } from './singularity/singularity-executor.js';
