import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { LIVE_CHUNK_BYTES } from '../../src/jobs/keys.js';
import { LiveOutput } from '../../src/worker/output/live-output.js';
import { useTestWorld } from '../helpers/stevedore.js';

type Entry = [id: Buffer, fields: Buffer[]];

/** The stream's entries as offset + data, and the end marker's produced count. */
async function readBack(
  redis: Redis,
  key: string,
): Promise<{ pieces: { o: number; d: Buffer }[]; eof: number }> {
  const entries = (await redis.xrangeBuffer(key, '-', '+')) as Entry[];
  const pieces: { o: number; d: Buffer }[] = [];
  let eof = -1;
  for (const [, raw] of entries) {
    const f = new Map<string, Buffer>();
    for (let i = 0; i + 1 < raw.length; i += 2) f.set(String(raw[i]), raw[i + 1] as Buffer);
    if (f.has('eof')) eof = Number(String(f.get('o')));
    else pieces.push({ o: Number(String(f.get('o'))), d: f.get('d') as Buffer });
  }
  return { pieces, eof };
}

/** Pushes `all` in pieces of varied sizes through one reused buffer, as the attach reader does. */
async function pushAll(live: LiveOutput, all: Buffer, pauseEvery = 0): Promise<void> {
  const reused = Buffer.alloc(300_000);
  let n = 0;
  for (let at = 0; at < all.length; n++) {
    const size = Math.min(all.length - at, 1 + ((n * 104_729) % reused.length));
    all.copy(reused, 0, at, at + size);
    live.push(reused.subarray(0, size));
    reused.fill(0x3f); // the next read overwrites it
    at += size;
    if (pauseEvery && n % pauseEvery === 0) await new Promise((r) => setTimeout(r, 120));
  }
  await live.finish();
}

describe('LiveOutput on Redis', () => {
  const world = useTestWorld();
  const log = pino({ level: 'silent' });

  it('keeps a slow writer’s lines up to the cap, not only its last few entries', async () => {
    const redis = world.raw;
    // One line per send (the sends are 100 ms apart): each line is its own small entry.
    const live = new LiveOutput(redis, 'live:slow', 256 * 1024, 1, log);
    const lines = Array.from({ length: 30 }, (_, i) => `line-${i + 1}\n`);
    for (const line of lines) {
      live.push(Buffer.from(line));
      await new Promise((r) => setTimeout(r, 130));
    }
    await live.finish();
    const { pieces, eof } = await readBack(redis, 'live:slow');
    expect(pieces.length).toBeGreaterThan(10); // sent as many small entries, as a slow job makes them
    expect(Buffer.concat(pieces.map((p) => p.d)).toString()).toBe(lines.join(''));
    expect(pieces[0]?.o).toBe(0);
    expect(eof).toBe(lines.join('').length);
    expect(live.truncated).toBe(false);
  });

  it('keeps output under its cap whole and exact, offsets contiguous, with the end marker', async () => {
    const redis = world.raw;
    const all = randomBytes(700_000);
    const live = new LiveOutput(redis, 'live:small', 1024 * 1024, 1, log);
    await pushAll(live, all, 3);
    const { pieces, eof } = await readBack(redis, 'live:small');
    expect(live.truncated).toBe(false);
    expect(eof).toBe(all.length);
    let expected = 0;
    for (const p of pieces) {
      expect(p.o).toBe(expected);
      expect(p.d.length).toBeLessThanOrEqual(LIVE_CHUNK_BYTES);
      expected += p.d.length;
    }
    expect(Buffer.compare(Buffer.concat(pieces.map((p) => p.d)), all)).toBe(0);
  });

  it('keeps the newest bytes of a larger output exactly, at their true offsets, within the cap', async () => {
    const redis = world.raw;
    const cap = 256 * 1024;
    const all = randomBytes(5_000_000);
    const live = new LiveOutput(redis, 'live:big', cap, 1, log);
    await pushAll(live, all, 7);
    const { pieces, eof } = await readBack(redis, 'live:big');
    expect(live.truncated).toBe(true);
    expect(eof).toBe(all.length);
    const kept = pieces.reduce((sum, p) => sum + p.d.length, 0);
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(cap);
    // Every piece holds exactly the bytes at its offset; the last one ends the output.
    for (const p of pieces) expect(Buffer.compare(p.d, all.subarray(p.o, p.o + p.d.length))).toBe(0);
    const last = pieces.at(-1) as { o: number; d: Buffer };
    expect(last.o + last.d.length).toBe(all.length);
  });

  it('takes one piece larger than the cap by its end only', async () => {
    const redis = world.raw;
    const cap = 128 * 1024;
    const all = randomBytes(1_000_000);
    const live = new LiveOutput(redis, 'live:one', cap, 1, log);
    live.push(all);
    await live.finish();
    const { pieces, eof } = await readBack(redis, 'live:one');
    expect(eof).toBe(all.length);
    const data = Buffer.concat(pieces.map((p) => p.d));
    expect(pieces[0]?.o).toBe(all.length - data.length);
    expect(Buffer.compare(data, all.subarray(all.length - data.length))).toBe(0);
  });
});
