import Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import {
  type ContainerRuntime,
  createExecutor,
  DockerExecutor,
  DockerRuntime,
  PodmanRuntime,
} from '../../src/executors/index.js';
import { RuntimeUnavailableError } from '../../src/jobs/errors.js';

/** A runtime that looks right by its fields but is not what openRuntime() returns. */
function lookalike(kind: ContainerRuntime['kind']): ContainerRuntime {
  return {
    kind,
    capabilities: { adopt: false, exec: false },
    version: async () => 'lookalike 1.0',
    engineId: async () => 'lookalike-engine',
    checkAvailable: async () => undefined,
    listContainers: async () => [],
    containerState: async () => null,
    removeContainer: async () => undefined,
    mountPathProblem: () => null,
    dataPaths: async () => [],
    close: async () => undefined,
  };
}

describe('createExecutor', () => {
  it("makes Docker's executor on a Docker or Podman runtime, at once (nothing to wait for)", async () => {
    const docker = new DockerRuntime({ client: new Dockerode({ socketPath: '/nonexistent.sock' }) });
    const podman = new PodmanRuntime('/nonexistent.sock', { binary: null, initPath: null });
    try {
      expect(createExecutor(docker, { name: 'job-1' })).toBeInstanceOf(DockerExecutor);
      expect(createExecutor(podman)).toBeInstanceOf(DockerExecutor);
    } finally {
      await docker.close();
      await podman.close();
    }
  });

  it.each(['docker', 'podman', 'singularity'] as const)(
    'refuses a %s runtime that openRuntime() did not make, saying what it expects',
    (kind) => {
      const make = () => createExecutor(lookalike(kind));
      expect(make).toThrow(RuntimeUnavailableError);
      expect(make).toThrow(
        `runtime ${kind} is not available: creating an executor needs a runtime that openRuntime("${kind}") opened (one of "docker", "podman" or "singularity"); this one is an instance of Object`,
      );
    },
  );
});
