import { describe, expect, it } from 'vitest';
import { keys } from '../../src/jobs/keys.js';
import { busybox, until, useTestWorld } from '../helpers/stevedore.js';

const text = async (chunks: AsyncIterable<Buffer>): Promise<string> => {
  let out = '';
  for await (const chunk of chunks) out += chunk.toString();
  return out;
};

describe("a finished job's live copies", () => {
  const world = useTestWorld();

  it('keep only what the result lacks, and logs still read the whole output', async () => {
    await world.h.worker();
    const client = world.h.client();
    const { id } = await client.submit(busybox(['sh', '-c', 'echo hello; echo oops >&2']));
    await client.waitForResult(id, { timeoutMs: 30_000 });
    const address = { prefix: 'bull', queue: world.h.queue };
    // The result's tail holds all of stdout and stderr: their streams go.
    await until(
      async () =>
        (await world.raw.exists(keys.output(address, id, 'stdout'), keys.output(address, id, 'stderr'))) ===
          0 && (await world.raw.xlen(keys.output(address, id, 'events'))) <= 2,
      5_000,
    );
    expect(await text(client.logs(id))).toBe('hello\n');
    expect(await text(client.logs(id, { stream: 'stderr' }))).toBe('oops\n');
    expect(await text(client.logs(id, { follow: true }))).toBe('hello\n');
    // The events keep how the run ended, compacted; the rest is marked as on the worker host.
    const eventsKey = keys.output(address, id, 'events');
    // Its last chunk: the exit, the result line with usage, finalizing and done (~1 KB), never a node's 4 KiB.
    expect(Number(await world.raw.memory('USAGE', eventsKey))).toBeLessThan(2048);
    expect(await world.raw.ttl(eventsKey)).toBeGreaterThan(0);
    const events = await text(client.logs(id, { stream: 'events' }));
    expect(events).toMatch(/^\[stevedore: \d+ earlier bytes not kept live/);
    expect(events).toMatch(/ done\n$/);
  });
});
