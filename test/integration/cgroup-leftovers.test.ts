import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DockerExecutor } from '../../src/executors/docker/docker-executor.js';
import { DockerRuntime } from '../../src/executors/docker/runtime.js';
import { TEST_IMAGE, testDocker, testImageTarball, testLabels } from '../helpers/docker.js';
import { executorSpec } from '../helpers/executor-spec.js';

/** The per-job parents live here on these machines (cgroup v1, cgroupfs driver). */
const PARENTS = '/sys/fs/cgroup/memory/stevedore';
const exists = (path: string): Promise<boolean> =>
  stat(path).then(
    () => true,
    () => false,
  );

describe('per-job parent cgroups left by containers removed from outside their executor', () => {
  const runtime = new DockerRuntime({ client: testDocker(), netns: 'fresh' });

  afterAll(async () => {
    await runtime.close();
  });

  it('go with the container when recovery removes it through the runtime', async () => {
    const e = new DockerExecutor({ runtime, labels: testLabels('cgroup-leftovers') });
    const loaded = await e.loadImage({
      image: TEST_IMAGE,
      tarballPath: testImageTarball(),
      pullPolicy: 'if-not-present',
    });
    await e.create(executorSpec(['true']), loaded);
    await e.start();
    expect(await e.wait()).toBe(0);
    const info = await testDocker().getContainer(e.containerId).inspect();
    const parent = join('/sys/fs/cgroup/memory', info.HostConfig.CgroupParent ?? '');
    expect(parent).toMatch(/\/stevedore\/[0-9a-f-]{36}$/);
    expect(await exists(parent)).toBe(true);
    // As reconcile does for a leftover: the runtime, not the executor that made it.
    await runtime.removeContainer(e.containerId);
    expect(await exists(parent)).toBe(false);
    e.detach();
  });

  it('are swept when empty and old enough; a parent that holds a running container stays', async () => {
    const stray = join(PARENTS, '00000000-0000-4000-8000-000000000000');
    await mkdir(stray, { recursive: true });
    const e = new DockerExecutor({ runtime, labels: testLabels('cgroup-leftovers') });
    try {
      const loaded = await e.loadImage({
        image: TEST_IMAGE,
        tarballPath: testImageTarball(),
        pullPolicy: 'if-not-present',
      });
      await e.create(executorSpec(['sleep', '30']), loaded);
      await e.start();
      const info = await testDocker().getContainer(e.containerId).inspect();
      const busy = join('/sys/fs/cgroup/memory', info.HostConfig.CgroupParent ?? '');
      expect(await runtime.cgroups.sweep(0)).toBeGreaterThanOrEqual(1);
      expect(await exists(stray)).toBe(false);
      expect(await exists(busy)).toBe(true);
      expect(await readdir(busy)).toContain(e.containerId);
    } finally {
      await e.close();
    }
  });
});
