import { describe, expect, it } from 'vitest';
import { bullmqKeys, keys } from '../../src/jobs/keys.js';
import { busybox, useTestWorld } from '../helpers/stevedore.js';

describe('client cancel of a waiting job', () => {
  const world = useTestWorld();

  it('reports a removal that Redis refused, instead of taking it for a worker having the job', async () => {
    const client = world.h.client();
    const { id } = await client.submit(busybox(['true']), { delay: 60_000 });
    const address = { prefix: 'bull', queue: world.h.queue };
    // BullMQ's remove script reads the job's dependency set: a key of the wrong type makes
    // Redis answer it with an error (WRONGTYPE), the way a full or read-only Redis would.
    await world.raw.set(`${bullmqKeys.job(address, id)}:dependencies`, 'not a set');
    await expect(client.cancel(id)).rejects.toThrow(
      new RegExp(
        `cancelling job ${id}: removing it from the queue failed \\(.*WRONGTYPE.*\\).*run cancel again`,
      ),
    );
    expect(await client.getResult(id)).toBeNull();
    expect(await world.raw.exists(keys.result(address, id))).toBe(0);
    expect(await world.raw.exists(keys.cancel(address, id))).toBe(1);

    await world.raw.del(`${bullmqKeys.job(address, id)}:dependencies`);
    expect(await client.cancel(id)).toBe('cancelled');
    expect((await client.getResult(id))?.state).toBe('Cancelled');
  });
});
