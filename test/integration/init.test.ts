import { describe, expect, it } from 'vitest';
import { busybox, untilRunning, useTestWorld } from '../helpers/stevedore.js';

/** Well under the default 10 s grace: the stop did not wait it out. */
const QUICK_STOP_MS = 2_000;

describe('jobs run under the engine init by default', () => {
  const world = useTestWorld();

  it('cancelling a running `sleep 60` with default settings completes in under 2 s', async () => {
    await world.h.worker();
    const client = world.h.client();
    const { id } = await client.submit(busybox(['sleep', '60']));
    await untilRunning(client, id);
    expect(await client.cancel(id)).toBe('cancelling');
    const result = await client.waitForResult(id, { timeoutMs: 20_000 });
    expect(result).toMatchObject({ state: 'Cancelled', reason: 'cancelled', signal: 'SIGTERM' });
    expect(result.phases.stopping).toBeLessThan(QUICK_STOP_MS);
  });

  it('a program that traps SIGTERM gets it first and finishes its handler before SIGKILL', async () => {
    await world.h.worker();
    const client = world.h.client();
    const { id } = await client.submit(
      busybox(
        [
          'sh',
          '-c',
          'trap "echo got-term; sleep 1; echo handler-done; exit 3" TERM; echo ready; while true; do sleep 0.1; done',
        ],
        { stopGraceSeconds: 8 },
      ),
    );
    await untilRunning(client, id);
    await client.cancel(id);
    const result = await client.waitForResult(id, { timeoutMs: 20_000 });
    expect(result).toMatchObject({ state: 'Cancelled', reason: 'cancelled', exitCode: 3 });
    expect(result.stdout.tail).toBe('ready\ngot-term\nhandler-done\n');
    // The handler's second ran inside the grace, not cut short by SIGKILL.
    expect(result.phases.stopping).toBeGreaterThanOrEqual(1_000);
  });

  it('with init: false the command is PID 1; by default it is not', async () => {
    await world.h.worker();
    const client = world.h.client();
    const withInit = await client.submit(busybox(['sh', '-c', 'echo $$']));
    const bare = await client.submit(busybox(['sh', '-c', 'echo $$'], { init: false }));
    const [a, b] = await Promise.all([
      client.waitForResult(withInit.id, { timeoutMs: 20_000 }),
      client.waitForResult(bare.id, { timeoutMs: 20_000 }),
    ]);
    expect(a.stdout.tail).not.toBe('1\n');
    expect(b.stdout.tail).toBe('1\n');
  });
});
