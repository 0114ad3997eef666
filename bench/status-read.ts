import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { StevedoreClient } from '../src/jobs/client.js';
import { type BenchRow, fmt, median, percentile } from './stats.js';

/** Jobs in the wait list and as many in the prioritized set: the dashboard's "10,000 jobs" and more. */
const JOBS = 10_000;
const BULK = 1_000;
const READS = 200;

/**
 * What `getStatus` costs (why a job waits) in a queue of JOBS waiting and JOBS prioritized jobs,
 * for the first job in line, the last, and a prioritized one (LPOS scans the wait list from its
 * head), beside BullMQ's `getJobs(['waiting'])`, which a reader that listed the queue would need.
 */
export async function statusReadRows(url: string, log: (line: string) => void): Promise<BenchRow[]> {
  const queueName = 'bench-status';
  const redis = new Redis(url, { maxRetriesPerRequest: null });
  const queue = new Queue(queueName, { connection: redis, prefix: 'bull' });
  const client = new StevedoreClient({ redis: url, queue: queueName });
  try {
    log(`status reads: enqueuing ${JOBS} waiting and ${JOBS} prioritized jobs`);
    const data = { image: 'busybox', command: ['true'] };
    for (const [kind, priority] of [
      ['w', 0],
      ['p', 1],
    ] as const) {
      for (let i = 0; i < JOBS; i += BULK) {
        await queue.addBulk(
          Array.from({ length: BULK }, (_, j) => ({
            name: 'run',
            data,
            opts: { jobId: `${kind}-${i + j}`, priority: priority && 1 + ((i + j) % 7) },
          })),
        );
      }
    }
    const reads: Record<string, number[]> = {};
    for (const [what, id] of [
      ['first in line', `w-0`],
      ['last in line', `w-${JOBS - 1}`],
      ['prioritized', `p-${JOBS - 1}`],
    ] as const) {
      const ms: number[] = [];
      for (let i = 0; i < READS; i++) {
        const start = performance.now();
        await client.getStatus(id);
        ms.push(performance.now() - start);
      }
      reads[what] = ms;
    }
    const listing: number[] = [];
    for (let i = 0; i < 3; i++) {
      const start = performance.now();
      await queue.getJobs(['waiting'], 0, -1);
      listing.push(performance.now() - start);
    }
    const all = Object.values(reads).flat();
    return [
      {
        figure: `getStatus (why a job waits), ${JOBS} waiting + ${JOBS} prioritized jobs, ms p50 / p99`,
        stevedore: Object.entries(reads)
          .map(([what, ms]) => `${what} ${fmt(median(ms), 2)} / ${fmt(percentile(ms, 99), 2)}`)
          .join('; '),
        baseline: `getJobs(['waiting']) ${fmt(median(listing), 0)}`,
        ratio: fmt(median(all) / median(listing), 3),
        target: '< 10 ms; one round trip, two for a job no worker has taken',
      },
    ];
  } finally {
    await client.close();
    await queue.obliterate({ force: true });
    await queue.close();
    await redis.quit();
  }
}
