import type { ContainerRuntime } from '../executors/index.js';
import type { RedisConnection } from '../jobs/connection.js';
import { answersWithin } from './answers-within.js';

/** What is wrong with a worker now, each null when fine: for /readyz and the up gauges. */
export interface WorkerProbe {
  redis: string | null;
  engine: string | null;
  /** Why it takes no jobs (closing, its engine away, paused). */
  jobs: string | null;
}

/** A readiness probe answers well within a Kubernetes probe's default 1 s timeout. */
const PROBE_TIMEOUT_MS = 800;

/** Null when `check` settles within PROBE_TIMEOUT_MS, else what went wrong. */
const answers = (check: () => Promise<unknown>): Promise<string | null> =>
  answersWithin(check, PROBE_TIMEOUT_MS);

/** Asks Redis and the engine now, at once; `jobs` is why the worker takes none, if it does not. */
export async function probeWorker(
  redis: Pick<RedisConnection, 'status' | 'ping'>,
  runtime: Pick<ContainerRuntime, 'checkAvailable'>,
  jobs: string | null,
): Promise<WorkerProbe> {
  const [redisDown, engineDown] = await Promise.all([
    // A connection that is reconnecting queues commands rather than failing them: say so at once.
    answers(async () => {
      if (redis.status !== 'ready') throw new Error(`connection is ${redis.status}`);
      await redis.ping();
    }),
    answers(() => runtime.checkAvailable()),
  ]);
  return { redis: redisDown, engine: engineDown, jobs };
}
