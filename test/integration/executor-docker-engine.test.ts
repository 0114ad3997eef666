import Dockerode from 'dockerode';
import { afterEach, describe, expect, it } from 'vitest';
import { DockerExecutor } from '../../src/executors/docker.js';
import { TEST_IMAGE, testDocker, testImageTarball, testLabels } from '../helpers/docker.js';
import { FreezableDockerProxy } from '../helpers/docker-proxy.js';
import { executorSpec } from '../helpers/executor-spec.js';

/** Docker-specific behaviour that the runtime-neutral conformance suite cannot express. */
describe('DockerExecutor on the engine', () => {
  const docker = testDocker();
  const cleanup: (() => Promise<void>)[] = [];

  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  const spec = (command: string[]) =>
    executorSpec(command, { env: { SECRET_TOKEN: 'x' }, vcpus: 1.5, ramBytes: 1000 });

  it('creates the container with the mapped limits, name, labels and log driver', async () => {
    const name = `stevedore-test-create-${process.pid}`;
    const e = new DockerExecutor({ docker, name, labels: testLabels('create') });
    cleanup.push(() => e.close());
    await e.loadImage(TEST_IMAGE, testImageTarball());
    await e.create(spec(['true']));
    const info = await docker.getContainer(e.containerId).inspect();
    expect(info.Name).toBe(`/${name}`);
    expect(info.Config.Labels).toMatchObject(testLabels('create'));
    expect(info.HostConfig).toMatchObject({
      CpuPeriod: 100_000,
      CpuQuota: 150_000,
      Memory: 6 * 1024 * 1024,
      MemorySwap: 6 * 1024 * 1024,
      AutoRemove: false,
      LogConfig: { Type: 'none' },
    });
    expect(info.Config.Tty).toBe(false);
    expect(info.Config.OpenStdin).toBe(false);
    // No network: a reused loopback-only namespace (see netns-holders.test.ts), or with reuse off its own.
    expect(info.HostConfig.NetworkMode).toMatch(/^container:[0-9a-f]{64}$/);
    const fresh = new DockerExecutor({ docker, labels: testLabels('create'), reuseNetns: false });
    cleanup.push(() => fresh.close());
    await fresh.create(spec(['true']));
    expect((await docker.getContainer(fresh.containerId).inspect()).HostConfig.NetworkMode).toBe('none');
  });

  it('a container stopped from outside (docker stop) fails wait() as infra, not as the job exit', async () => {
    const e = new DockerExecutor({ docker, labels: testLabels('foreign-stop') });
    cleanup.push(() => e.close());
    await e.loadImage(TEST_IMAGE, testImageTarball());
    await e.create(spec(['sh', '-c', "trap 'exit 5' TERM; while true; do sleep 0.1; done"]));
    await e.start();
    await docker.getContainer(e.containerId).stop({ t: 5 });
    await expect(e.wait()).rejects.toThrow(
      /running: the container was stopped from outside Stevedore \(signal 15, exit 5\)/,
    );
  });

  it('close() removes the container', async () => {
    const e = new DockerExecutor({ docker, labels: testLabels('close') });
    await e.loadImage(TEST_IMAGE, testImageTarball());
    await e.create(spec(['true']));
    const id = e.containerId;
    await e.close();
    await expect(docker.getContainer(id).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it('a dropped event stream alone (the engine still answers) keeps the output stream: no reattach', async () => {
    const proxy = await FreezableDockerProxy.start();
    cleanup.push(() => proxy.close());
    const e = new DockerExecutor({
      docker: new Dockerode({ socketPath: proxy.socketPath }),
      labels: testLabels('events-cut'),
    });
    cleanup.push(() => e.close());
    await e.loadImage(TEST_IMAGE, testImageTarball());
    const s = spec(['sh', '-c', 'echo before; sleep 1; echo after']);
    await e.create(s);
    await e.start();
    const exit = e.wait();
    await new Promise((r) => setTimeout(r, 300));
    expect(proxy.cut(/^GET (\/v[\d.]+)?\/events/)).toBe(1);
    await expect(exit).resolves.toBe(0);
    expect(s.stdout.text).toBe('before\nafter\n');
    expect(e.reattachments).toEqual([]);
  });

  it('the watchdog rejects wait() when the daemon stops answering', async () => {
    const proxy = await FreezableDockerProxy.start();
    cleanup.push(() => proxy.close());
    const viaProxy = new Dockerode({ socketPath: proxy.socketPath });
    const e = new DockerExecutor({
      docker: viaProxy,
      labels: testLabels('watchdog'),
      watchdogIntervalMs: 100,
      engineOutageMs: 500,
    });
    await e.loadImage(TEST_IMAGE, testImageTarball());
    await e.create(spec(['sleep', '60']));
    const id = e.containerId;
    cleanup.push(() => docker.getContainer(id).remove({ force: true }));
    await e.start();
    proxy.frozen = true;
    await expect(e.wait()).rejects.toThrow(
      /running: docker daemon stopped answering \(\d+ inspects failed over \d+\.\d s/,
    );
  });
});
