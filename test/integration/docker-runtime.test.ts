import Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import { DockerExecutor } from '../../src/executors/docker/docker-executor.js';
import { HOLDER_LABEL } from '../../src/executors/docker/netns/holders.js';
import { DockerRuntime } from '../../src/executors/docker/runtime.js';
import { openRuntime } from '../../src/executors/index.js';
import { RuntimeUnavailableError } from '../../src/jobs/errors.js';
import { TEST_IMAGE, testDocker, testImageTarball, testLabels } from '../helpers/docker.js';
import { executorSpec } from '../helpers/executor-spec.js';

const holdersLabelled = (docker: Dockerode, label: string) =>
  docker.listContainers({ all: true, filters: { label: [HOLDER_LABEL, label] } });

/** Runs `true` without network on `executor`, then closes it; returns the holder its container joined. */
async function runOne(docker: Dockerode, executor: DockerExecutor): Promise<string> {
  try {
    const loaded = await executor.loadImage({
      image: TEST_IMAGE,
      tarballPath: testImageTarball(),
      pullPolicy: 'if-not-present',
    });
    await executor.create(executorSpec(['true']), loaded);
    await executor.start();
    expect(await executor.wait()).toBe(0);
    const mode = (await docker.getContainer(executor.containerId).inspect()).HostConfig.NetworkMode ?? '';
    expect(mode).toMatch(/^container:/);
    return mode.slice('container:'.length);
  } finally {
    await executor.close();
  }
}

/** What one worker shares between its executors is one object it owns, not a registry keyed by the client. */
describe('DockerRuntime', () => {
  it('two runtimes on one client each keep their own holders, made with their own options, and close them', async () => {
    const docker = testDocker();
    const a = new DockerRuntime({ client: docker, holders: { labels: testLabels('runtime-a') } });
    const b = new DockerRuntime({ client: docker, holders: { labels: testLabels('runtime-b') } });
    try {
      const inA = await runOne(docker, new DockerExecutor({ runtime: a, labels: testLabels('runtime-a') }));
      const inB = await runOne(docker, new DockerExecutor({ runtime: b, labels: testLabels('runtime-b') }));
      expect(inB).not.toBe(inA);
      expect((await holdersLabelled(docker, 'stevedore.test=runtime-a')).map((c) => c.Id)).toEqual([inA]);
      expect((await holdersLabelled(docker, 'stevedore.test=runtime-b')).map((c) => c.Id)).toEqual([inB]);
      // The next job of a reuses a's holder.
      expect(await runOne(docker, new DockerExecutor({ runtime: a, labels: testLabels('runtime-a') }))).toBe(
        inA,
      );
    } finally {
      await a.close();
      await b.close();
    }
    expect(await holdersLabelled(docker, 'stevedore.test=runtime-a')).toEqual([]);
    expect(await holdersLabelled(docker, 'stevedore.test=runtime-b')).toEqual([]);
  });

  it('an executor used alone makes a runtime of its own and leaves nothing behind when closed', async () => {
    const docker = testDocker();
    const executor = new DockerExecutor({ docker, labels: testLabels('runtime-alone') });
    const holder = await runOne(docker, executor);
    await expect(docker.getContainer(holder).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it('openRuntime on an engine that does not answer fails with where it looked and what to do', async () => {
    const client = new Dockerode({ socketPath: '/nonexistent/stevedore-test/docker.sock' });
    const opened = openRuntime('docker', { docker: { client } });
    await expect(opened).rejects.toBeInstanceOf(RuntimeUnavailableError);
    await expect(opened).rejects.toThrow(
      /^runtime docker is not available: no Docker engine at unix:\/\/\/nonexistent\/stevedore-test\/docker.sock \(connect ENOENT .*\): start one with `sudo (dockerd|systemctl start docker)/,
    );
  });
});
