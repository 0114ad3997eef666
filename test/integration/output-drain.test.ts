import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FreezableDockerProxy } from '../helpers/docker-proxy.js';
import { busybox, useTestWorld } from '../helpers/stevedore.js';

/** The exit code known from inspect while the output stream hangs: the job ends anyway, and says what it lost. */
describe('output that never ends after the exit', () => {
  const world = useTestWorld();
  let proxy: FreezableDockerProxy;

  beforeAll(async () => {
    proxy = await FreezableDockerProxy.start();
  });
  afterAll(async () => {
    await proxy.close();
  });

  it('is cut at the drain deadline: a Complete result, and a warning in events.log', async () => {
    const { h } = world;
    const client = new Dockerode({ socketPath: proxy.socketPath });
    await h.worker(
      {},
      { runtimeOptions: { docker: { client, watchdogIntervalMs: 100, outputDrainMs: 300 } } },
    );
    proxy.hold(/\/containers\/[^/]+\/wait\?/, 'all');
    proxy.hold(/\/containers\/[^/]+\/attach\?/, 'end');
    const jobs = h.client();
    const { id } = await jobs.submit(busybox(['echo', 'all of it']));
    const result = await jobs.waitForResult(id, { timeoutMs: 30_000 });
    expect(result).toMatchObject({ state: 'Complete', reason: 'exited', exitCode: 0, error: null });
    expect(result.stdout.tail).toBe('all of it\n');
    const events = await readFile(join(dirname(result.stdout.path as string), 'events.log'), 'utf8');
    expect(events).toMatch(
      / warning {"message":"the output stream had not ended 300 ms after the exit code was read from inspect/,
    );
  });
});
