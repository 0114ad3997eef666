import type { Logger } from 'pino';
import type { RedisConnection } from '../jobs/connection.js';

export interface CancelListenerOptions {
  subscriber: RedisConnection;
  channel: string;
  onCancel: (jobId: string) => void;
  logger: Logger;
  /** Ids of the jobs this worker runs now. */
  running: () => string[];
  /** Reads a job's durable cancel flag. */
  isCancelled: (jobId: string) => Promise<boolean>;
}

/**
 * Listens on the queue's cancel channel and calls `onCancel(jobId)` for each request, so that
 * a cancel from any process reaches the worker that holds the job. Pub/sub keeps nothing for a
 * subscriber that is away, so on every (re)connect the durable flags of the running jobs are read
 * once the subscription is back: a cancel published meanwhile is acted on then.
 */
export async function listenForCancels(options: CancelListenerOptions): Promise<() => Promise<void>> {
  const { subscriber, channel, onCancel, logger } = options;
  subscriber.on('message', (from: string, jobId: string) => {
    if (from !== channel) return;
    logger.debug({ jobId }, 'cancel request received');
    onCancel(jobId);
  });
  const recheck = async (): Promise<void> => {
    // Subscribed first, then read: a cancel is either published after this or its flag is set.
    await subscriber.subscribe(channel);
    const ids = options.running();
    const flags = await Promise.all(ids.map((id) => options.isCancelled(id)));
    ids.forEach((jobId, i) => {
      if (!flags[i]) return;
      logger.info({ jobId }, 'cancel flag found after the cancel channel reconnected');
      onCancel(jobId);
    });
  };
  await subscriber.subscribe(channel);
  let closing = false;
  subscriber.on('ready', () => {
    if (closing) return;
    recheck().catch((error: unknown) =>
      logger.warn({ err: error }, 'could not re-read cancel flags after a reconnect; will on the next one'),
    );
  });
  return async () => {
    closing = true;
    await subscriber.quit().catch(() => subscriber.disconnect());
  };
}
