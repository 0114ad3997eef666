import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import type { RedisConnection } from '../jobs/connection.js';
import type { QueueAddress } from '../jobs/keys.js';
import { QUEUE_SWEEP_MS, sweepQueueTimeouts } from '../jobs/queue-timeout.js';

export interface QueueSweepOptions {
  redis: RedisConnection;
  queue: Queue;
  address: QueueAddress;
  logger: Logger;
  everyMs?: number;
}

/**
 * Ends the queue's jobs that are past their queue deadline, every QUEUE_SWEEP_MS, one sweep at a
 * time: every worker of the queue does, and the verdict (set once) keeps them from ending a job
 * twice. Returns the stop, which waits for a sweep under way.
 */
export function startQueueSweep(options: QueueSweepOptions): () => Promise<void> {
  const { redis, queue, address, logger } = options;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = false;
  let failing = false;
  const tick = (): void => {
    running = sweepQueueTimeouts(redis, queue, address).then(
      (ended) => {
        failing = false;
        if (ended > 0) logger.info({ ended }, 'jobs past their queue timeout ended');
      },
      (error: unknown) => {
        // One line per outage, not one a second.
        if (!failing) logger.warn({ err: error }, 'queue timeout sweep failed; trying again each second');
        failing = true;
      },
    );
    void running.then(() => {
      if (!stopped) timer = setTimeout(tick, options.everyMs ?? QUEUE_SWEEP_MS);
    });
  };
  tick();
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await running;
  };
}
