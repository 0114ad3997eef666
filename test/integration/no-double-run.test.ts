import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FreezableDockerProxy } from '../helpers/docker-proxy.js';
import { busybox, useTestWorld } from '../helpers/stevedore.js';

const ATTACH = /\/containers\/[^/]+\/attach\?/;
const KILL = /^POST \/[^ ]*containers\/[^/]+\/kill\?/;

/**
 * A shutdown in `stop` mode that lands after the job's container exited by itself, before wait()
 * returned (issue #26, "Nothing runs twice by accident"). The window is held open on purpose: a
 * proxy in front of the engine keeps back the end of the container's output stream, so the worker
 * has not finished waiting when the engine already knows the exit.
 */
describe('a shutdown between a job’s own exit and the worker seeing it', () => {
  const world = useTestWorld();
  const docker = new Dockerode();
  let proxy: FreezableDockerProxy;
  let dir: string;

  beforeAll(async () => {
    proxy = await FreezableDockerProxy.start();
    dir = await mkdtemp(join(tmpdir(), 'stevedore-runs-'));
  });
  afterAll(async () => {
    await proxy.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps the job’s own exit as its result: it runs once, and the next worker never runs it again', async () => {
    const { h } = world;
    const first = await h.worker(
      { onShutdown: 'stop' },
      { runtimeOptions: { docker: { client: new Dockerode({ socketPath: proxy.socketPath }) } } },
    );
    proxy.hold(ATTACH, 'end');
    const jobs = h.client();
    const { id } = await jobs.submit(
      busybox(['sh', '-c', 'echo run >> /runs/count; echo all of it; exit 3'], {
        mounts: { '/runs': { hostPath: dir, readOnly: false } },
        stopGraceSeconds: 2,
      }),
    );

    // The container has exited; the worker still waits for its output to end.
    const label = `stevedore.job-id=${id}`;
    await until(async () => {
      const found = await docker.listContainers({ all: true, filters: { label: [label] } });
      return found.length === 1 && found[0]?.State === 'exited';
    });
    const closed = first.close({ graceMs: 0 });
    await until(() => proxy.requestLines.some((line) => KILL.test(line)));
    proxy.release(ATTACH);
    await closed;

    // Had the job been put back, this worker would run it a second time.
    await h.worker({ onShutdown: 'stop' });
    const result = await jobs.waitForResult(id, { timeoutMs: 30_000 });
    expect(result).toMatchObject({
      state: 'Complete',
      reason: 'exited',
      exitCode: 3,
      attempt: 1,
      error: null,
    });
    expect(result.stdout.tail).toBe('all of it\n');
    // Let the second worker poll a while: the job must not come back to it.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(await readFile(join(dir, 'count'), 'utf8')).toBe('run\n');
    expect(result.attempts).toHaveLength(1);
  });
});

async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
