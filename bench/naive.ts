import { Queue, QueueEvents, Worker } from 'bullmq';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { BENCH_LABEL } from './bare.js';

/**
 * The naive alternative: a BullMQ processor that shells out to `docker run --rm` through execa.
 * Returns the wall time for `jobs` jobs at `concurrency`.
 */
export async function naiveRun(
  redisUrl: string,
  image: string,
  command: string[],
  jobs: number,
  concurrency: number,
): Promise<number> {
  const name = `bench-naive-${Date.now()}`;
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const worker = new Worker(
    name,
    async () => {
      const r = await execa(
        'docker',
        ['run', '--rm', '--network', 'none', '--label', `${BENCH_LABEL}=naive`, image, ...command],
        { reject: false },
      );
      return { exitCode: r.exitCode, stdout: r.stdout };
    },
    { connection, concurrency },
  );
  const queue = new Queue(name, { connection });
  queue.setMaxListeners(0); // one waitUntilFinished listener per job
  const eventsConnection = connection.duplicate();
  const events = new QueueEvents(name, { connection: eventsConnection });
  await events.waitUntilReady();
  await worker.waitUntilReady();
  const t0 = performance.now();
  const added = await queue.addBulk(Array.from({ length: jobs }, () => ({ name: 'run', data: {} })));
  await Promise.all(added.map((job) => job.waitUntilFinished(events)));
  const elapsed = performance.now() - t0;
  await worker.close();
  await events.close();
  await queue.obliterate({ force: true });
  await queue.close();
  await connection.quit();
  eventsConnection.disconnect();
  return elapsed;
}
