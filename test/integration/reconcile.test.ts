import { Redis } from 'ioredis';
import { beforeAll, describe, expect, it } from 'vitest';
import { DockerExecutor } from '../../src/executors/docker/docker-executor.js';
import { bullmqKeys } from '../../src/jobs/keys.js';
import { LABELS, labelFilters } from '../../src/jobs/names.js';
import { TEST_IMAGE, testDocker, testImageTarball } from '../helpers/docker.js';
import { busybox, untilRunning, useTestWorld } from '../helpers/stevedore.js';

describe('reconciliation of leftover containers', () => {
  const world = useTestWorld();

  beforeAll(async () => {
    await new DockerExecutor().loadImage({
      image: TEST_IMAGE,
      tarballPath: testImageTarball(),
      pullPolicy: 'if-not-present',
    });
  });

  async function leftover(jobId: string, start = true): Promise<string> {
    const { h } = world;
    const c = await testDocker().createContainer({
      Image: TEST_IMAGE,
      Cmd: ['sleep', '300'],
      Labels: {
        [LABELS.queue]: h.queue,
        [LABELS.jobId]: jobId,
        [LABELS.attempt]: '1',
        [LABELS.workerId]: 'dead',
        [LABELS.deployment]: await h.deployment(),
      },
      HostConfig: { NetworkMode: 'none' },
    });
    if (start) await c.start();
    return c.id;
  }

  const exists = async (id: string): Promise<boolean> =>
    testDocker()
      .getContainer(id)
      .inspect()
      .then(
        () => true,
        () => false,
      );

  it('a starting worker removes containers of finished and unknown jobs, and never-started ones', async () => {
    const { h } = world;
    const client = h.client();
    const { id: finished } = await client.submit(busybox(['true']));
    const first = await h.worker({ lockDurationMs: 1_000 });
    await client.waitForResult(finished, { timeoutMs: 20_000 });
    await first.close();
    const { id: delayed } = await client.submit(busybox(['true']), { delay: 600_000 });
    const ofFinished = await leftover(finished);
    const ofUnknown = await leftover('never-submitted');
    const ofDelayed = await leftover(delayed, false); // never started: nothing to adopt
    // Leftovers must be older than the grace period (the lock duration) before they are touched.
    await new Promise((r) => setTimeout(r, 1_100));
    await h.worker({ lockDurationMs: 1_000 });
    expect(await exists(ofFinished)).toBe(false);
    expect(await exists(ofUnknown)).toBe(false);
    expect(await exists(ofDelayed)).toBe(false);
    await client.cancel(delayed);
  });

  it('never removes the container of a job another live worker is running', async () => {
    const { h } = world;
    const client = h.client();
    await h.worker({ lockDurationMs: 1_000 });
    const { id } = await client.submit(busybox(['sleep', '30'], { stopGraceSeconds: 0 }));
    await untilRunning(client, id);
    await new Promise((r) => setTimeout(r, 1_200)); // older than the grace period
    await h.worker({ lockDurationMs: 1_000 });
    const live = await testDocker().listContainers({
      filters: { label: labelFilters(h.queue, id) },
    });
    expect(live).toHaveLength(1);
    await client.cancel(id);
    expect((await client.waitForResult(id, { timeoutMs: 10_000 })).state).toBe('Cancelled');
  });

  it('a job taken again whose earlier container never started removes it and runs once more', async () => {
    const { h } = world;
    const client = h.client();
    // Delayed, so that no worker takes it before the set-up.
    const { id } = await client.submit(busybox(['sh', '-c', 'echo second run']), { delay: 1_500 });
    const earlier = await leftover(id, false);
    // Mark the job as started once before, as a crashed worker's attempt would have.
    const raw = new Redis(world.redis.url);
    await raw.hset(bullmqKeys.job({ prefix: 'bull', queue: h.queue }, id), 'ats', '1');
    await raw.quit();
    await h.worker();
    const result = await client.waitForResult(id, { timeoutMs: 20_000 });
    expect(result.stdout.tail).toBe('second run\n');
    expect(await exists(earlier)).toBe(false);
  });

  it('a container left by a failed earlier attempt (say, the engine restarted under it) is not adopted', async () => {
    const { h } = world;
    const client = h.client();
    const { id } = await client.submit(busybox(['sh', '-c', 'echo fresh run']), { delay: 1_500 });
    const earlier = await leftover(id); // running, labelled attempt 1
    // The job failed once (attemptsMade 1, started once): this is attempt 2.
    const raw = new Redis(world.redis.url);
    await raw.hset(bullmqKeys.job({ prefix: 'bull', queue: h.queue }, id), 'ats', '1', 'atm', '1');
    await raw.quit();
    await h.worker();
    const result = await client.waitForResult(id, { timeoutMs: 20_000 });
    expect(result).toMatchObject({ adopted: false, attempt: 2, exitCode: 0 });
    expect(result.stdout.tail).toBe('fresh run\n');
    expect(await exists(earlier)).toBe(false);
  });

  it('a running worker looks again now and then: a leftover appearing later is removed too', async () => {
    const { h } = world;
    // Every 4 lock durations; the worker is already running when the leftover appears (as when
    // BullMQ fails a job that stalled too often and no worker owns its container).
    const worker = await h.worker({ lockDurationMs: 1_000 });
    const late = await leftover('failed-by-bullmq-meanwhile');
    const deadline = Date.now() + 15_000;
    while ((await exists(late)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(await exists(late)).toBe(false);
    expect(worker.running()).toBe(0);
  });
});
