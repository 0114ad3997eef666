import { describe, expect, it } from 'vitest';
import { labelFilters } from '../../src/jobs/names.js';
import { testDocker } from '../helpers/docker.js';
import { watchCreates } from '../helpers/events.js';
import { busybox, untilRunning, useTestWorld } from '../helpers/stevedore.js';

/** How long Redis stays down, as the reliability issue asks. */
const OUTAGE_MS = 30_000;

describe('Redis outage', () => {
  const world = useTestWorld();

  it('containers keep running while Redis is down; results are written when it returns; nothing lost or run twice', async () => {
    const { h, redis } = world;
    const creates = await watchCreates(testDocker(), labelFilters(h.queue));
    await h.worker({ concurrency: 3, lockDurationMs: 60_000 });
    const client = h.client();
    const ids = await Promise.all(
      [0, 1, 2].map((i) => client.submit(busybox(['sh', '-c', `sleep ${4 + i}; echo done-${i}`]))),
    );
    await Promise.all(ids.map(({ id }) => untilRunning(client, id)));
    await redis.stop();
    // The containers run on, and finish, while nobody can reach Redis. The outage lasts its
    // full length on purpose: it is the scenario, not a wait for something to happen.
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    const stillThere = await testDocker().listContainers({
      all: true,
      filters: { label: labelFilters(h.queue) },
    });
    expect(stillThere.map((c) => c.State)).toEqual(['exited', 'exited', 'exited']);
    await redis.startAgain();
    const results = await Promise.all(ids.map(({ id }) => client.waitForResult(id, { timeoutMs: 60_000 })));
    results.forEach((r, i) => {
      expect(r).toMatchObject({ state: 'Complete', exitCode: 0, attempt: 1 });
      expect(r.stdout.tail).toBe(`done-${i}\n`);
    });
    // The worker keeps consuming afterwards.
    const { id: after } = await client.submit(busybox(['echo', 'after the outage']));
    expect((await client.waitForResult(after, { timeoutMs: 30_000 })).stdout.tail).toBe('after the outage\n');
    expect(await creates.stop()).toHaveLength(4);
  }, 150_000);
});
