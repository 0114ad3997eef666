import { readFile } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { DockerExecutor } from '../../src/executors/docker/docker-executor.js';
import { HOLDER_LABEL } from '../../src/executors/docker/netns/holders.js';
import { DockerRuntime } from '../../src/executors/docker/runtime.js';
import type { ExecutorSpec } from '../../src/executors/executor.js';
import { LABELS } from '../../src/jobs/names.js';
import { TEST_IMAGE, testDocker, testImageTarball, testLabels } from '../helpers/docker.js';
import { watchEnd } from '../helpers/events.js';
import { executorSpec } from '../helpers/executor-spec.js';
import { recordingLogger } from '../helpers/logs.js';
import { busybox, useTestWorld } from '../helpers/stevedore.js';

/** Prints the job's network namespace, its interfaces, and whether /etc/hosts can be changed. */
const PROBE = [
  'sh',
  '-c',
  'readlink /proc/self/ns/net; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | tr "\\n" ,; echo; ' +
    '(echo tampered >> /etc/hosts) 2>/dev/null && echo hosts-writable || echo hosts-read-only; ' +
    'grep -c tampered /etc/hosts || true',
];

const spec = executorSpec;

describe('network namespaces of jobs without network', () => {
  const docker = testDocker();
  const runtime = new DockerRuntime({ client: docker, holders: { labels: testLabels('netns') } });
  const holders = runtime.holders as NonNullable<DockerRuntime['holders']>;

  afterAll(async () => {
    await runtime.close();
  });

  async function run(
    command: string[],
    options: { reuseNetns?: boolean; extra?: Partial<ExecutorSpec> } = {},
  ): Promise<{ code: number; lines: string[]; networkMode: string }> {
    const e = new DockerExecutor({ runtime, labels: testLabels('netns'), reuseNetns: options.reuseNetns });
    const s = spec(command, options.extra);
    try {
      const loaded = await e.loadImage({
        image: TEST_IMAGE,
        tarballPath: testImageTarball(),
        pullPolicy: 'if-not-present',
      });
      await e.create(s, loaded);
      await e.start();
      const code = await e.wait();
      const networkMode = (await docker.getContainer(e.containerId).inspect()).HostConfig.NetworkMode ?? '';
      return { code, lines: s.stdout.text.trim().split('\n'), networkMode };
    } finally {
      await e.close();
    }
  }

  it('jobs one after another take turns in one loopback-only namespace that none of them can change', async () => {
    const first = await run(PROBE);
    const second = await run(PROBE);
    expect(first).toEqual({
      code: 0,
      lines: [expect.stringMatching(/^net:\[\d+\]$/), 'lo,', 'hosts-read-only', '0'],
      networkMode: expect.stringMatching(/^container:[0-9a-f]{64}$/),
    });
    expect(second).toEqual(first);
    expect(holders.size).toBe(1);
  });

  it('jobs running at the same time never share a namespace', async () => {
    const [a, b] = await Promise.all([
      run(['sh', '-c', 'readlink /proc/self/ns/net; sleep 1']),
      run(['sh', '-c', 'readlink /proc/self/ns/net; sleep 1']),
    ]);
    expect(a.lines[0]).toMatch(/^net:/);
    expect(b.lines[0]).toMatch(/^net:/);
    expect(a.lines[0]).not.toBe(b.lines[0]);
  });

  it('with reuse off, and for jobs with network, each job gets a namespace of its own', async () => {
    // The holder keeps the shared namespace alive, so its inode tells it apart (a freed
    // namespace's inode may be given to the next one, so fresh ones are known by their mode).
    const shared = (await run(PROBE)).lines[0];
    const fresh = await run(PROBE, { reuseNetns: false });
    expect(fresh).toMatchObject({ code: 0, networkMode: 'none' });
    expect(fresh.lines.slice(1)).toEqual(['lo,', 'hosts-writable', '1']);
    expect(fresh.lines[0]).not.toBe(shared);
    const networked = await run(['readlink', '/proc/self/ns/net'], { extra: { enableNetwork: true } });
    expect(networked.networkMode).toBe('default');
    expect(networked.lines[0]).not.toBe(shared);
  });

  it("a spec's own bind mount at /etc/hosts is what the job sees", async () => {
    const { lines } = await run(['cat', '/etc/hosts'], {
      extra: { bindMounts: { '/etc/hosts': { hostPath: '/etc/hostname', readOnly: true } } },
    });
    expect(lines).toEqual([(await readFile('/etc/hostname', 'utf8')).trim()]);
  });

  it('a holder removed between create and start is replaced: the job runs, its output whole', async () => {
    const e = new DockerExecutor({ runtime, labels: testLabels('netns') });
    const s = spec(['echo', 'still here']);
    try {
      const loaded = await e.loadImage({
        image: TEST_IMAGE,
        tarballPath: testImageTarball(),
        pullPolicy: 'if-not-present',
      });
      await e.create(s, loaded);
      const mode = (await docker.getContainer(e.containerId).inspect()).HostConfig.NetworkMode ?? '';
      expect(mode).toMatch(/^container:/);
      await docker.getContainer(mode.slice('container:'.length)).remove({ force: true });
      await e.start();
      expect(await e.wait()).toBe(0);
      expect(s.stdout.text).toBe('still here\n');
      const now = (await docker.getContainer(e.containerId).inspect()).HostConfig.NetworkMode;
      expect(now).toMatch(/^container:/);
      expect(now).not.toBe(mode);
    } finally {
      await e.close();
    }
  });
});

describe('namespace holders that outlive their lifetime', () => {
  const docker = testDocker();
  // Short, so the test is too; the pool keeps a holder only while it has more than a quarter of
  // its lifetime left, which a holder given back at once has on any machine.
  const lifetimeSeconds = 4;
  const runtime = new DockerRuntime({
    client: docker,
    holders: { labels: testLabels('netns-expiry'), lifetimeSeconds },
  });
  const holders = runtime.holders as NonNullable<DockerRuntime['holders']>;

  afterAll(async () => {
    await runtime.close();
  });

  it('end by themselves and are removed by the engine; the next job gets a new one', async () => {
    // Why a job got a namespace of its own is only in acquire()'s warn line: keep it for the assertion.
    const warnings = recordingLogger('warn');
    // Taken and given back at once (not held for a job's length): how long a job takes on a
    // loaded machine then has no say in whether the pool keeps it.
    const expired = await holders.acquire(warnings.logger);
    if (!expired) throw new Error(`no holder was made: ${warnings.lines().join('; ')}`);
    const end = await watchEnd(docker, expired.id, lifetimeSeconds * 1000 + 15_000);
    holders.release(expired);
    expect(holders.size).toBe(1);
    // Exit 0: its program ended after its lifetime; a removal by the pool would be a SIGKILL (137).
    expect(await end.removed).toEqual({ exitCode: '0' });

    const e = new DockerExecutor({ runtime, labels: testLabels('netns-expiry'), logger: warnings.logger });
    try {
      const loaded = await e.loadImage({
        image: TEST_IMAGE,
        tarballPath: testImageTarball(),
        pullPolicy: 'if-not-present',
      });
      await e.create(spec(['true']), loaded);
      await e.start();
      expect(await e.wait()).toBe(0);
      const mode = (await docker.getContainer(e.containerId).inspect()).HostConfig.NetworkMode;
      expect(warnings.lines()).toEqual([]);
      expect(mode).toMatch(/^container:[0-9a-f]{64}$/);
      expect(mode).not.toBe(`container:${expired.id}`);
    } finally {
      await e.close();
    }
  });
});

describe('a worker and its holders', () => {
  const world = useTestWorld();

  it('labels them with its queue and id, and removes them when it closes', async () => {
    const { h } = world;
    const worker = await h.worker();
    const client = h.client();
    const { id } = await client.submit(busybox(['true']));
    expect((await client.waitForResult(id, { timeoutMs: 30_000 })).exitCode).toBe(0);
    const ofQueue = () =>
      testDocker().listContainers({ all: true, filters: { label: [`${HOLDER_LABEL}=${h.queue}`] } });
    const made = await ofQueue();
    expect(made).toHaveLength(1);
    expect(made[0]?.Labels[LABELS.workerId]).toBe(worker.id);
    await h.close();
    expect(await ofQueue()).toEqual([]);
  });
});
