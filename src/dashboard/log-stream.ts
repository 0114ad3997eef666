import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { StevedoreClient } from '../jobs/client.js';
import type { RedisConnection } from '../jobs/connection.js';
import { connect } from '../jobs/connection.js';
import { keys, type QueueAddress } from '../jobs/keys.js';
import { readLiveOutput } from '../jobs/logs.js';
import { startEventStream } from './respond.js';

/** Each open log view holds one Redis connection (a blocking XREAD); more are refused with 503. */
export const MAX_LOG_STREAMS = 32;

export interface LogStreamDeps {
  redis: RedisConnection;
  logger: Logger;
  client: StevedoreClient;
  address: QueueAddress;
}

/** One SSE event; JSON keeps the text on one `data:` line whatever it holds. */
const event = (name: string, data: unknown): string => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;

/**
 * Streams one output stream of a job as Server-Sent Events: `chunk` events with text, as `stevedore
 * logs -f` reads it (everything kept so far, then what arrives), and `end` when the job has
 * finished. `closed` stops it when the browser goes away: the reader checks it where it would
 * check whether the job finished, so even a silent job's stream ends within one blocking read.
 */
export async function streamLog(
  res: ServerResponse,
  deps: LogStreamDeps,
  id: string,
  stream: 'stdout' | 'stderr',
  closed: () => boolean,
): Promise<void> {
  startEventStream(res);
  // The browser reconnects on its own after a drop: the page clears the text on each open.
  res.write('retry: 2000\n\n');
  const decoder = new TextDecoder('utf-8');
  const finished = async (): Promise<boolean> => closed() || (await deps.client.getResult(id)) !== null;
  const chunks = readLiveOutput({
    connection: connect(deps.redis, (error) =>
      deps.logger.debug({ err: error, jobId: id }, 'dashboard: log view Redis connection error'),
    ),
    key: keys.output(deps.address, id, stream),
    follow: true,
    finished,
    kept: async () => (await deps.client.getResult(id))?.[stream] ?? null,
  });
  for await (const chunk of chunks) {
    if (closed()) break;
    const text = decoder.decode(chunk, { stream: true });
    if (text && !res.write(event('chunk', text))) {
      await new Promise<void>((resolve) => {
        res.once('drain', resolve);
        res.once('close', resolve);
      });
    }
  }
  if (closed()) return;
  const rest = decoder.decode();
  if (rest) res.write(event('chunk', rest));
  res.end(event('end', {}));
}
