import type { Redis } from 'ioredis';

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
  connection: Redis;
  key: string;
  follow: boolean;
  finished: () => Promise<boolean>;
}): AsyncGenerator<Buffer> {
  const { connection, key } = options;
  let last = '0-0';
  let expected = 0;
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
          sawEnd = true;
          expected = 0; // a retried attempt starts again at offset 0
          continue;
        }
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
      if (!follow && entries.length === 0) return;
      if (follow && (entries.length === 0 || sawEnd) && (await options.finished())) {
        // Anything written between the read and the check is in Redis before the result is.
        const rest = (await connection.xrangeBuffer(key, `(${last}`, '+')) as Entry[];
        for (const [, raw] of rest) {
          const data = fieldsOf(raw).get('d');
          if (data) yield data;
        }
        return;
      }
    }
  } finally {
    connection.disconnect();
  }
}
