import type { RedisConnection } from './connection.js';

/** How long one blocking read waits before checking whether the job has finished. */
const FOLLOW_BLOCK_MS = 1_000;
const PAGE = 100;

type Entry = [id: Buffer, fields: Buffer[]];

function fieldsOf(raw: Buffer[]): Map<string, Buffer> {
  const map = new Map<string, Buffer>();
  for (let i = 0; i + 1 < raw.length; i += 2) map.set(String(raw[i]), raw[i + 1] as Buffer);
  return map;
}

/**
 * Reads one output stream of a job from its bounded Redis copy (written by the worker's
 * LiveOutput): everything kept so far, and with `follow` everything that arrives until the job
 * has finished. Gaps where the cap dropped bytes are marked in the text.
 */
export async function* readLiveOutput(options: {
  connection: RedisConnection;
  key: string;
  follow: boolean;
  finished: () => Promise<boolean>;
  /**
   * The finished job's own copy of this stream (its result's tail), for when the worker dropped
   * the live copy because the result holds all of it; null when there is none.
   */
  kept?: () => Promise<{ bytes: number; tail: string } | null>;
}): AsyncGenerator<Buffer> {
  const { connection, key } = options;
  let last = '0-0';
  let expected = 0;
  /** Whether the last entry read ended an attempt (nothing of it is left to read). */
  let ended = false;
  /** The bytes of the result's tail past what was read, once the live copy is gone. */
  const rest = async function* (): AsyncGenerator<Buffer> {
    if (ended || !options.kept || (await connection.exists(key)) === 1) return;
    const kept = await options.kept();
    if (!kept) return;
    const tail = Buffer.from(kept.tail);
    const from = expected - (kept.bytes - tail.length);
    if (from >= 0 && from < tail.length) yield tail.subarray(from);
  };
  try {
    // A finished job's output is all in Redis already (it is written before the result): read it
    // through instead of blocking for entries that will never come.
    const follow = options.follow && !(await options.finished());
    for (;;) {
      const entries: Entry[] = follow
        ? (((await connection.xreadBuffer('BLOCK', FOLLOW_BLOCK_MS, 'STREAMS', key, last))?.[0]?.[1] ??
            []) as Entry[])
        : ((await connection.xrangeBuffer(key, `(${last}`, '+', 'COUNT', PAGE)) as Entry[]);
      let sawEnd = false;
      for (const [id, raw] of entries) {
        last = String(id);
        const fields = fieldsOf(raw);
        if (fields.has('eof')) {
          sawEnd = ended = true;
          expected = 0; // a retried attempt starts again at offset 0
          continue;
        }
        ended = false;
        const offset = Number(String(fields.get('o') ?? '0'));
        const data = fields.get('d') ?? Buffer.alloc(0);
        if (offset > expected) {
          yield Buffer.from(
            `[stevedore: ${offset - expected} earlier bytes not kept live; the worker's log file has them]\n`,
          );
        }
        yield data;
        expected = offset + data.length;
      }
      if (!follow && entries.length === 0) {
        if (await options.finished()) yield* rest();
        return;
      }
      if (follow && (entries.length === 0 || sawEnd) && (await options.finished())) {
        // Anything written between the read and the check is in Redis before the result is.
        const left = (await connection.xrangeBuffer(key, `(${last}`, '+')) as Entry[];
        for (const [, raw] of left) {
          const data = fieldsOf(raw).get('d');
          if (data) {
            yield data;
            expected += data.length;
            ended = false;
          } else ended = true;
        }
        yield* rest();
        return;
      }
    }
  } finally {
    connection.disconnect();
  }
}
