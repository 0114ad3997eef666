import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { DockerDemux } from '../../src/executors/docker/attach/demux.js';
import { Sink } from '../helpers/streams.js';

function frame(kind: number, payload: string | Buffer): Buffer {
  const body = Buffer.from(payload);
  const header = Buffer.alloc(8);
  header[0] = kind;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

async function demux(
  chunks: Buffer[],
  out = new Sink(),
  err = new Sink(),
): Promise<{ out: Sink; err: Sink }> {
  await pipeline(Readable.from(chunks), new DockerDemux(out, err));
  return { out, err };
}

describe('DockerDemux', () => {
  it('splits frames into stdout and stderr', async () => {
    const { out, err } = await demux([Buffer.concat([frame(1, 'a'), frame(2, 'b'), frame(1, 'c')])]);
    expect(out.text).toBe('ac');
    expect(err.text).toBe('b');
  });

  it('handles headers and payloads split across chunks at every offset', async () => {
    const all = Buffer.concat([frame(1, 'hello'), frame(2, Buffer.from([0, 255, 10])), frame(1, '')]);
    for (let cut = 1; cut < all.length; cut++) {
      const { out, err } = await demux([all.subarray(0, cut), all.subarray(cut)]);
      expect(out.text).toBe('hello');
      expect(err.buffer).toEqual(Buffer.from([0, 255, 10]));
    }
  });

  it('waits for a slow consumer', async () => {
    const big = Buffer.alloc(100_000, 'z');
    const slow = new Sink(1);
    await demux([frame(1, big), frame(1, big), frame(1, big)], slow);
    expect(slow.buffer.length).toBe(300_000);
    // A demux that ignored backpressure would have queued every frame in the sink at once.
    expect(slow.maxQueued).toBe(100_000);
  });

  it('fails when the stream ends inside a frame', async () => {
    await expect(demux([frame(1, 'abcdef').subarray(0, 10)])).rejects.toThrow(/ended inside a frame/);
  });
});
