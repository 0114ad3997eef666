import { DockerExecutor, type DockerExecutorOptions } from './docker/docker-executor.js';
import type { ContainerExecutor } from './executor.js';

export type RuntimeKind = 'docker' | 'singularity';

export interface ExecutorOptions {
  docker?: DockerExecutorOptions;
}

/** Creates the executor for a runtime; one executor runs one container. */
export async function createExecutor(
  kind: RuntimeKind,
  options: ExecutorOptions = {},
): Promise<ContainerExecutor> {
  switch (kind) {
    case 'docker':
      return new DockerExecutor(options.docker);
    case 'singularity':
      throw new Error(
        'creating: the singularity runtime is not available yet in this version of Stevedore; use runtime "docker"',
      );
    default:
      throw new Error(
        `creating: unknown runtime ${JSON.stringify(kind)}; expected "docker" or "singularity"`,
      );
  }
}

export {
  DOCKER_MIN_MEMORY_BYTES,
  type DockerHostFacts,
  toDockerCreateOptions,
} from './docker/create-options.js';
export { DockerExecutor, type DockerExecutorOptions } from './docker/docker-executor.js';
export type {
  BindMount,
  ContainerExecutor,
  ExecOptions,
  ExecResult,
  ExecutorSpec,
  ExitDetails,
  UsageSample,
} from './executor.js';
