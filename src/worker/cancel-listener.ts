import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

/**
 * Listens on the queue's cancel channel and calls `onCancel(jobId)` for each request, so that
 * a cancel from any process reaches the worker that holds the job.
 */
export async function listenForCancels(
  subscriber: Redis,
  channel: string,
  onCancel: (jobId: string) => void,
  logger: Logger,
): Promise<() => Promise<void>> {
  subscriber.on('message', (from: string, jobId: string) => {
    if (from !== channel) return;
    logger.debug({ jobId }, 'cancel request received');
    onCancel(jobId);
  });
  await subscriber.subscribe(channel);
  return async () => {
    await subscriber.quit().catch(() => subscriber.disconnect());
  };
}
