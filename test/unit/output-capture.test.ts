import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TAIL_BYTES, utf8Tail } from '../../src/jobs/result.js';
import { DEFAULT_MAX_OUTPUT_BYTES, OutputCapture } from '../../src/worker/output/capture.js';

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

  describe('with a cap on the file', () => {
    const CAP = 3 * 1024 * 1024 + 7; // not a multiple of any chunk or block size

    it('ends the file exactly at the cap, counts the rest, keeps the tail of the whole stream, and says where once', async () => {
      for (const copies of [true, false]) {
        const path = join(dir, `capped-${copies}`);
        const capped: number[] = [];
        const capture = new OutputCapture(path, null, undefined, {
          maxBytes: CAP,
          onCapped: (at) => capped.push(at),
        });
        const pieces = Array.from({ length: 9 }, () => randomBytes(1024 * 1024 - 1));
        for (const piece of pieces) {
          const more = copies ? capture.writeCopy(piece) : capture.write(piece);
          if (!more) await new Promise((r) => capture.once('drain', r));
        }
        await capture.close();
        const all = Buffer.concat(pieces);
        expect(Buffer.compare(await readFile(path), all.subarray(0, CAP))).toBe(0);
        expect(capture.summary()).toMatchObject({ bytes: all.length, keptBytes: CAP, tail: utf8Tail(all) });
        expect(capped).toEqual([CAP]);
      }
    });

    it('reports keptBytes equal to bytes under the cap, and 0 when no file is kept', async () => {
      const path = join(dir, 'under-cap');
      const under = new OutputCapture(path, null, undefined, { maxBytes: CAP });
      await feed(under, [Buffer.from('small')]);
      expect(under.summary()).toMatchObject({ bytes: 5, keptBytes: 5 });
      const none = new OutputCapture(null, null, undefined, { maxBytes: 2 });
      await feed(none, [Buffer.from('no file')]);
      expect(none.summary()).toMatchObject({ bytes: 7, keptBytes: 0 });
    });

    it('continues an adopted run up to the cap and no further, however much of it the file already holds', async () => {
      for (const already of [CAP - 10, CAP, CAP + 5]) {
        const path = join(dir, `adopted-${already}`);
        const earlier = Buffer.alloc(already, 'e');
        await writeFile(path, earlier);
        const capped: number[] = [];
        const capture = new OutputCapture(
          path,
          null,
          { bytes: already, tail: earlier.subarray(-10) },
          {
            maxBytes: CAP,
            onCapped: (at) => capped.push(at),
          },
        );
        await feed(capture, [Buffer.alloc(100, 'r'), Buffer.alloc(50, 's')]);
        const file = await readFile(path);
        expect(file.length).toBe(Math.max(CAP, already));
        expect(file.subarray(already).toString()).toBe('r'.repeat(Math.max(0, CAP - already)));
        expect(capture.summary()).toMatchObject({ bytes: already + 150, keptBytes: Math.max(CAP, already) });
        expect(capped).toEqual([Math.max(CAP, already)]);
      }
    });

    it('defaults to DEFAULT_MAX_OUTPUT_BYTES, 1 GiB', () => {
      expect(DEFAULT_MAX_OUTPUT_BYTES).toBe(1024 ** 3);
    });
  });
});
