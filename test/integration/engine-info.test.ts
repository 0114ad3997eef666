import Dockerode from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_PREFIX } from '../../src/jobs/keys.js';
import { listWorkers } from '../../src/jobs/workers.js';
import { FreezableDockerProxy } from '../helpers/docker-proxy.js';
import { openTestPodman } from '../helpers/podman.js';
import { useTestWorld } from '../helpers/stevedore.js';

// A worker's start reads its engine's name, data root and cgroup layout (engineId, dataPaths, the
// per-job cgroups) from one /info answer; a proxy in front of the engine counts the calls.
// Apptainer has no engine to ask: its engineId and dataPaths come from its own settings.
const world = useTestWorld();
const { podman, reason } = await openTestPodman('engine-info-holders');
afterAll(async () => {
  expect(await podman?.close()).toEqual([]);
});

/** The engine's /info calls the proxy saw: Docker's `/info`, or Podman's `/libpod/info`. */
const infoCalls = (proxy: FreezableDockerProxy): string[] =>
  proxy.requestLines.filter((line) => /^GET \S*\/info[? ]/.test(line));

/** The engine this worker put in its presence (ContainerRuntime.engineId). */
async function presenceEngine(): Promise<string | undefined> {
  const { workers } = await listWorkers(world.raw, { prefix: DEFAULT_PREFIX, queue: world.h.queue });
  return workers[0]?.engine;
}

describe("a worker's start asks its engine's /info once", () => {
  it('docker: one /info names the engine, its data root and cgroup layout', async () => {
    const proxy = await FreezableDockerProxy.start();
    try {
      await world.h.worker(
        {},
        { runtimeOptions: { docker: { client: new Dockerode({ socketPath: proxy.socketPath }) } } },
      );
      expect(infoCalls(proxy)).toHaveLength(1);
      const info = (await new Dockerode().info()) as { Name: string; DockerRootDir: string };
      expect(await presenceEngine()).toBe(`${info.Name}:${info.DockerRootDir}`);
    } finally {
      await world.h.close();
      await proxy.close();
    }
  });

  it.skipIf(podman === null)(
    'podman: one libpod/info serves the rootless check and the rest, and names the engine as its Docker-compatible /info would',
    async () => {
      const service = podman as NonNullable<typeof podman>;
      const proxy = await FreezableDockerProxy.start(service.socket);
      try {
        await world.h.worker({ runtime: 'podman', podmanSocket: proxy.socketPath });
        expect(infoCalls(proxy)).toEqual([expect.stringMatching(/^GET \/v4\.0\.0\/libpod\/info /)]);
        // The engine id is what it was when it came from the compatible /info.
        const compat = (await service.runtime.docker.info()) as { Name: string; DockerRootDir: string };
        expect(await presenceEngine()).toBe(`${compat.Name}:${compat.DockerRootDir}`);
      } finally {
        await world.h.close();
        await proxy.close();
      }
    },
  );
  if (podman === null) console.warn(`[skip] podman /info at start: ${reason}`);
});
