import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TAIL_BYTES, utf8Tail } from '../../src/jobs/result.js';
import { OutputCapture } from '../../src/worker/output/capture.js';

const dir = await mkdtemp(join(tmpdir(), 'stevedore-capture-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Gives `pieces` to the capture, alternately as copies of one reused buffer and as chunks. */
async function feed(capture: OutputCapture, pieces: Buffer[]): Promise<void> {
  const reused = Buffer.alloc(Math.max(...pieces.map((p) => p.length)));
  for (const [i, piece] of pieces.entries()) {
    piece.copy(reused);
    const more = i % 2 === 0 ? capture.writeCopy(reused.subarray(0, piece.length)) : capture.write(piece);
    reused.fill(0x21);
    if (!more) await new Promise((r) => capture.once('drain', r));
  }
  await capture.close();
}

describe('OutputCapture', () => {
  it('keeps every byte in the file and the last TAIL_BYTES as the tail, from copies and chunks alike', async () => {
    const path = join(dir, 'mixed');
    const capture = new OutputCapture(path);
    const pieces = [300, 5, 2_000_000, 17, TAIL_BYTES + 3, 1, 9_000].map((n) => randomBytes(n));
    await feed(capture, pieces);
    const all = Buffer.concat(pieces);
    expect(Buffer.compare(await readFile(path), all)).toBe(0);
    const summary = capture.summary();
    expect(summary.bytes).toBe(all.length);
    expect(summary.tail).toBe(utf8Tail(all));
  });

  it('builds the tail from many small pieces and from an earlier worker’s tail', async () => {
    const earlier = Buffer.from('earlier part|');
    const capture = new OutputCapture(null, null, { bytes: earlier.length, tail: earlier });
    await feed(capture, [Buffer.from('a'), Buffer.from('bc'), Buffer.from('def\n')]);
    expect(capture.summary().tail).toBe('earlier part|abcdef\n');
    expect(capture.summary().bytes).toBe(earlier.length + 7);

    const long = new OutputCapture(null);
    const lines = Array.from({ length: 2_000 }, (_, i) => Buffer.from(`line ${i}\n`));
    await feed(long, lines);
    const text = Buffer.concat(lines).toString('utf8');
    expect(long.summary().tail).toBe(text.slice(-TAIL_BYTES));
  });

  it('never starts the tail inside a multi-byte character', async () => {
    const capture = new OutputCapture(null);
    const text = 'é'.repeat(TAIL_BYTES);
    await feed(capture, [Buffer.from(text)]);
    const tail = capture.summary().tail;
    expect(tail).toBe('é'.repeat(tail.length));
    expect(Buffer.byteLength(tail)).toBeLessThanOrEqual(TAIL_BYTES);
  });

  it('a file that fails (ENOSPC on /dev/full) neither stalls nor throws; close() says what it lacks', async () => {
    for (const copies of [true, false]) {
      const capture = new OutputCapture('/dev/full');
      const piece = Buffer.alloc(3 * 1024 * 1024, 'x');
      for (let i = 0; i < 4; i++) {
        const more = copies ? capture.writeCopy(piece) : capture.write(piece);
        if (!more) await new Promise((r) => capture.once('drain', r));
      }
      await expect(capture.close()).rejects.toThrow(
        /output file \/dev\/full holds only the first 0 of 12582912 bytes: ENOSPC/,
      );
      expect(capture.summary()).toMatchObject({ bytes: 12_582_912, tail: 'x'.repeat(TAIL_BYTES) });
    }
  });
});
