import { describe, expect, it } from 'vitest';
import { keys } from '../../src/jobs/keys.js';
import { busybox, untilRunning, useTestWorld } from '../helpers/stevedore.js';

describe('cancel while the cancel channel reconnects', () => {
  const world = useTestWorld();

  it('acts on a cancel flag whose announcement the subscriber missed', async () => {
    await world.h.worker();
    const client = world.h.client();
    const { id } = await client.submit(busybox(['sleep', '60'], { stopGraceSeconds: 1 }));
    await untilRunning(client, id);
    // The announcement is lost (never published here); only the durable flag is left, as when
    // the cancel came while the subscriber was away. Dropping its connection makes it reconnect.
    await world.raw.set(keys.cancel({ prefix: 'bull', queue: world.h.queue }, id), '1');
    expect(await world.raw.client('KILL', 'TYPE', 'pubsub')).toBeGreaterThan(0);
    const result = await client.waitForResult(id, { timeoutMs: 15_000 });
    expect(result).toMatchObject({ state: 'Cancelled', reason: 'cancelled' });
  });
});
