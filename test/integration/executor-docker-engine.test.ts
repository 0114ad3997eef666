import { Agent } from 'node:http';
import { Readable } from 'node:stream';
import Dockerode from 'dockerode';
import { afterEach, describe, expect, it } from 'vitest';
import { attachRaw } from '../../src/executors/docker/attach/raw-attach.js';
import { DockerExecutor } from '../../src/executors/docker/docker-executor.js';
import { MIN_MEMORY_BYTES } from '../../src/executors/limits.js';
import { TEST_IMAGE, testDocker, testImageTarball, testLabels } from '../helpers/docker.js';
import { FreezableDockerProxy } from '../helpers/docker-proxy.js';
import { executorSpec } from '../helpers/executor-spec.js';
import { until } from '../helpers/stevedore.js';

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
    const loaded = await e.loadImage({
      image: TEST_IMAGE,
      tarballPath: testImageTarball(),
      pullPolicy: 'if-not-present',
    });
    await e.create(spec(['true']), loaded);
    const info = await docker.getContainer(e.containerId).inspect();
    expect(info.Name).toBe(`/${name}`);
    expect(info.Config.Labels).toMatchObject(testLabels('create'));
    expect(info.HostConfig).toMatchObject({
      CpuPeriod: 100_000,
      CpuQuota: 150_000,
      Memory: MIN_MEMORY_BYTES,
      MemorySwap: MIN_MEMORY_BYTES,
      AutoRemove: false,
      // The defaults: the engine keeps the output, an init is PID 1, a parent cgroup of its own.
      LogConfig: { Type: 'local' },
      Init: true,
    });
    expect(info.HostConfig.CgroupParent).toMatch(/^\/stevedore\/[0-9a-f-]{36}$/);
    expect(info.Config.Tty).toBe(false);
    expect(info.Config.OpenStdin).toBe(false);
    // No network: a reused loopback-only namespace (see netns-holders.test.ts), or with reuse off its own.
    expect(info.HostConfig.NetworkMode).toMatch(/^container:[0-9a-f]{64}$/);
    const fresh = new DockerExecutor({ docker, labels: testLabels('create'), reuseNetns: false });
    cleanup.push(() => fresh.close());
    await fresh.create(spec(['true']), loaded);
    expect((await docker.getContainer(fresh.containerId).inspect()).HostConfig.NetworkMode).toBe('none');
  });

  it('a container stopped from outside (docker stop) fails wait() as infra, not as the job exit', async () => {
    const e = new DockerExecutor({ docker, labels: testLabels('foreign-stop') });
    cleanup.push(() => e.close());
    const loaded = await e.loadImage({
      image: TEST_IMAGE,
      tarballPath: testImageTarball(),
      pullPolicy: 'if-not-present',
    });
    await e.create(spec(['sh', '-c', "trap 'exit 5' TERM; while true; do sleep 0.1; done"]), loaded);
    await e.start();
    await docker.getContainer(e.containerId).stop({ t: 5 });
    await expect(e.wait()).rejects.toThrow(
      /running: the container was stopped from outside Stevedore \(signal 15, exit 5\)/,
    );
  });

  it('close() removes the container', async () => {
    const e = new DockerExecutor({ docker, labels: testLabels('close') });
    const loaded = await e.loadImage({
      image: TEST_IMAGE,
      tarballPath: testImageTarball(),
      pullPolicy: 'if-not-present',
    });
    await e.create(spec(['true']), loaded);
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
    const loaded = await e.loadImage({
      image: TEST_IMAGE,
      tarballPath: testImageTarball(),
      pullPolicy: 'if-not-present',
    });
    const s = spec(['sh', '-c', 'echo before; sleep 1; echo after']);
    await e.create(s, loaded);
    await e.start();
    const exit = e.wait();
    // Cut the event stream as soon as it is open (while "sleep 1" runs), not after a guessed pause.
    await until(async () => proxy.cut(/^GET (\/v[\d.]+)?\/events/) === 1, 5_000);
    await expect(exit).resolves.toBe(0);
    expect(s.stdout.text).toBe('before\nafter\n');
    expect(e.reattachments()).toEqual([]);
    expect((await e.exitDetails()).outputCut).toBeNull();
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
    const loaded = await e.loadImage({
      image: TEST_IMAGE,
      tarballPath: testImageTarball(),
      pullPolicy: 'if-not-present',
    });
    await e.create(spec(['sleep', '60']), loaded);
    const id = e.containerId;
    cleanup.push(() => docker.getContainer(id).remove({ force: true }));
    await e.start();
    proxy.frozen = true;
    await expect(e.wait()).rejects.toThrow(
      /running: docker daemon stopped answering \(\d+ inspects failed over \d+\.\d s/,
    );
  });

  it('when the exit code comes from inspect and the output stream never ends, wait() cuts it at the drain deadline and says so', async () => {
    const proxy = await FreezableDockerProxy.start();
    cleanup.push(() => proxy.close());
    const e = new DockerExecutor({
      docker: new Dockerode({ socketPath: proxy.socketPath }),
      labels: testLabels('drain-deadline'),
      watchdogIntervalMs: 100,
      outputDrainMs: 300,
    });
    cleanup.push(() => e.close());
    const loaded = await e.loadImage({
      image: TEST_IMAGE,
      tarballPath: testImageTarball(),
      pullPolicy: 'if-not-present',
    });
    // The wait request never answers (so the watchdog's inspect gives the exit code) and the
    // output stream never ends, as after a lost response on a hung connection.
    proxy.hold(/\/containers\/[^/]+\/wait\?/, 'all');
    proxy.hold(/\/containers\/[^/]+\/attach\?/, 'end');
    const s = spec(['echo', 'all of it']);
    await e.create(s, loaded);
    await e.start();
    await expect(e.wait()).resolves.toBe(0);
    expect(s.stdout.text).toBe('all of it\n');
    expect((await e.exitDetails()).outputCut).toMatch(
      /^the output stream had not ended 300 ms after the exit code was read from inspect; it was cut after 10 stdout and 0 stderr bytes/,
    );
  });

  it('attaches over its own connection on a socket or plain HTTP, and through dockerode otherwise: same bytes', async () => {
    const proxy = await FreezableDockerProxy.start(undefined, { tcp: true });
    cleanup.push(() => proxy.close());
    const clients = {
      tcp: new Dockerode({ host: '127.0.0.1', port: proxy.port, protocol: 'http' }),
      // A custom agent is one of the settings only dockerode honours: it attaches then.
      agent: new Dockerode({
        host: '127.0.0.1',
        port: proxy.port,
        protocol: 'http',
        agent: new Agent(), // docker-modem takes it; @types/dockerode 4 does not list it
      } as Dockerode.DockerOptions),
    };
    for (const [name, client] of Object.entries(clients)) {
      const e = new DockerExecutor({ docker: client, labels: testLabels('attach-paths') });
      cleanup.push(() => e.close());
      const loaded = await e.loadImage({
        image: TEST_IMAGE,
        tarballPath: testImageTarball(),
        pullPolicy: 'if-not-present',
      });
      const s = executorSpec(['sh', '-c', 'cat; printf "to stderr" >&2; exit 3'], {
        stdin: Readable.from([Buffer.from('line one\n'), Buffer.from('line two')]),
      });
      const before = proxy.requestLines.length;
      await e.create(s, loaded);
      await e.start();
      expect(await e.wait(), name).toBe(3);
      expect(s.stdout.text, name).toBe('line one\nline two');
      expect(s.stderr.text, name).toBe('to stderr');
      const attach = proxy.requestLines.slice(before).filter((l) => l.includes('/attach?'));
      // Ours asks for exactly the streams it reads; dockerode's query carries its own extras.
      expect(attach, name).toHaveLength(1);
      expect(attach[0]?.includes('?stream=1&stdout=1&stderr=1&stdin=1 '), name).toBe(name === 'tcp');
    }
  });

  it('raw attach to a container that does not exist fails like the engine says, with the status code', async () => {
    const out = executorSpec([]);
    await expect(
      attachRaw(docker, 'no-such-container-stevedore', { stdin: false }, out),
    ).rejects.toMatchObject({ statusCode: 404, message: expect.stringMatching(/No such container/) });
  });
});
