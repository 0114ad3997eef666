import { Queue } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { testDocker } from '../helpers/docker.js';
import { watchCreates } from '../helpers/events.js';
import { useTestWorld } from '../helpers/stevedore.js';

describe('an image that cannot be had', () => {
  const world = useTestWorld();

  it('is not on the host, has no tarball and may not be pulled: fails at once, reason image, one attempt, the fix named', async () => {
    const { h } = world;
    const queue = new Queue(h.queue, { connection: { host: '127.0.0.1', port: world.redis.port } });
    try {
      const creates = await watchCreates(testDocker(), [`stevedore.queue=${h.queue}`]);
      await h.worker();
      const client = h.client();
      // Three attempts with a short backoff: an unretried failure shows as attemptsMade 1.
      const { id } = await client.submit(
        { image: 'stevedore-test/never-loaded:1', imagePullPolicy: 'never', command: ['true'] },
        { attempts: 3, backoff: { type: 'fixed', delay: 10 } },
      );
      const result = await client.waitForResult(id, { timeoutMs: 20_000 });
      expect(result).toMatchObject({ state: 'Failed', reason: 'image', attempt: 1, containerId: null });
      expect(result.attempts).toHaveLength(1);
      expect(result.error?.phase).toBe('loading-image');
      expect(result.error?.message).toMatch(/not present on this host/);
      expect(result.error?.message).toMatch(/docker pull stevedore-test\/never-loaded:1/);
      expect(result.error?.message).toMatch(/imageTarball/);
      expect(result.error?.message).toMatch(/imagePullPolicy "if-not-present"/);
      const job = await queue.getJob(id);
      expect(await job?.getState()).toBe('failed');
      expect(job?.attemptsMade).toBe(1);
      expect(await creates.stop()).toEqual([]);
    } finally {
      await queue.close();
    }
  });
});
