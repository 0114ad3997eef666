import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { BLOCK_BYTES, BlockFile } from '../../src/worker/output/block-file.js';

const dir = await mkdtemp(join(tmpdir(), 'stevedore-block-'));
afterAll(() => rm(dir, { recursive: true, force: true }));
let n = 0;
const file = () => join(dir, `f${++n}`);

describe('BlockFile', () => {
  it('writes every byte in order, whatever the chunk sizes (within, across and exactly at blocks)', async () => {
    const sizes = [1, 100, 65_536, BLOCK_BYTES, BLOCK_BYTES - 1, 3 * BLOCK_BYTES + 7, 2, 65_536 * 5];
    const chunks = sizes.map((size) => randomBytes(size));
    const path = file();
    await pipeline(Readable.from(chunks), new BlockFile(path, 'w'));
    expect(Buffer.compare(await readFile(path), Buffer.concat(chunks))).toBe(0);
  });

  it('creates the file even when nothing is written, and replaces what was there', async () => {
    const path = file();
    await writeFile(path, 'old');
    await pipeline(Readable.from([]), new BlockFile(path, 'w'));
    expect((await stat(path)).size).toBe(0);
  });

  it('appends in "a" mode (an adopted run continues its file)', async () => {
    const path = file();
    await writeFile(path, 'first part|');
    await pipeline(Readable.from([Buffer.from('second part')]), new BlockFile(path, 'a'));
    expect(await readFile(path, 'utf8')).toBe('first part|second part');
  });

  it('writes a block that is not full after a short while, before the stream ends', async () => {
    const path = file();
    const out = new BlockFile(path, 'w');
    out.write(Buffer.from('slow line\n'));
    const deadline = Date.now() + 5_000;
    while ((await readFile(path, 'utf8').catch(() => '')) !== 'slow line\n' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(await readFile(path, 'utf8')).toBe('slow line\n');
    out.write(Buffer.from('next\n'));
    await new Promise<void>((resolve) => out.end(resolve));
    expect(await readFile(path, 'utf8')).toBe('slow line\nnext\n');
  });

  it('fails the stream with the reason when the file cannot be opened', async () => {
    const out = new BlockFile(join(dir, 'missing-dir', 'f'), 'w');
    await expect(pipeline(Readable.from([Buffer.from('x')]), out)).rejects.toThrow(/ENOENT/);
  });

  it('writeCopy copies before it returns: one reused buffer, mixed with write(), gives every byte in order', async () => {
    const path = file();
    const out = new BlockFile(path, 'w');
    const expected: Buffer[] = [];
    const reused = Buffer.alloc(300_000);
    for (let i = 0; i < 20; i++) {
      const bytes = randomBytes(1 + ((i * 77_777) % reused.length));
      bytes.copy(reused);
      const view = reused.subarray(0, bytes.length);
      expected.push(bytes);
      // Every third piece as an ordinary chunk, so copies and queued chunks interleave.
      const more = i % 3 === 2 ? out.write(bytes) : out.writeCopy(view);
      reused.fill(0xee); // what the reader's next read would do to the buffer
      if (!more) await new Promise((r) => out.once('drain', r));
    }
    await new Promise<void>((resolve) => out.end(resolve));
    expect(Buffer.compare(await readFile(path), Buffer.concat(expected))).toBe(0);
  });
});
