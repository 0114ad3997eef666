import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { bundledImageTarball, DEMO_IMAGE } from '../src/cli/demo.js';
import { loadConfig } from '../src/config/worker.js';
import { StevedoreClient } from '../src/jobs/client.js';
import { RedisServerProcess } from '../src/worker/redis-server.js';
import { startWorker } from '../src/worker/worker.js';

/** What the bench reports about Redis memory per finished job. */
export interface RedisMemoryFigure {
  jobs: number;
  /** Bytes of output each job wrote (stdout). */
  outputBytes: number;
  /** used_memory growth per finished job, worker and client gone. */
  perJobBytes: number;
  /** Of that, BullMQ's events stream: shared by the queue and capped (10,000 entries by default). */
  eventsStreamPerJobBytes: number;
  /** MEMORY USAGE of each of one job's keys, by what the key is. */
  keys: Record<string, number>;
}

const OUTPUT = 'fifteen bytes!\n';

/** A policy file in `dir` that lets jobs load the bundled tarball (the default policy loads none). */
async function tarballPolicy(dir: string): Promise<string> {
  const path = join(dir, 'policy.json');
  await writeFile(
    path,
    JSON.stringify({ imageTarballs: [{ hostPath: dirname(await bundledImageTarball()) }] }),
  );
  return path;
}

const used = async (redis: Redis): Promise<number> =>
  Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? Number.NaN);

/**
 * Runs `jobs` trivial jobs (15 bytes of stdout each) through a worker on a fresh redis-server
 * and measures how much Redis grew per finished job, and what one job's keys take.
 */
export async function measureRedisMemory(jobs = 200): Promise<RedisMemoryFigure> {
  const dir = await mkdtemp(join(tmpdir(), 'stevedore-bench-memory-'));
  const server = new RedisServerProcess({ dataDir: dir });
  await server.start();
  const raw = new Redis(server.url);
  try {
    const queue = 'memory';
    const client = new StevedoreClient({ redis: server.url, queue });
    // The queue's own keys (meta, id counter, events stream) exist before the first job is counted.
    const warm = await client.submit({
      image: DEMO_IMAGE,
      imageTarball: await bundledImageTarball(),
      command: ['true'],
    });
    const worker = await startWorker(
      {
        ...loadConfig({}),
        redisUrl: server.url,
        queue,
        concurrency: 4,
        stateDir: dir,
        logDir: join(dir, 'logs'),
        policyPath: await tarballPolicy(dir),
      },
      { logger: pino({ level: process.env.BENCH_LOG_LEVEL ?? 'silent' }) },
    );
    await client.waitForResult(warm.id, { timeoutMs: 60_000 });
    const eventsKey = `bull:${queue}:events`;
    const streamSize = async (): Promise<number> =>
      Number(await raw.memory('USAGE', eventsKey, 'SAMPLES', 0));
    const before = await used(raw);
    const eventsBefore = await streamSize();
    const spec = {
      image: DEMO_IMAGE,
      imageTarball: await bundledImageTarball(),
      command: ['printf', OUTPUT],
    };
    const ids: string[] = [];
    for (let i = 0; i < jobs; i++) ids.push((await client.submit(spec)).id);
    for (const id of ids) await client.waitForResult(id, { timeoutMs: 120_000 });
    await worker.close({ graceMs: 0 });
    await client.close();
    const after = await used(raw);
    const eventsAfter = await streamSize();
    const sample = ids.at(-1) as string;
    const keys: Record<string, number> = {};
    for (const key of await raw.keys(`*${sample}*`)) {
      const what = key.replace(sample, '<id>');
      keys[what] = Number(await raw.memory('USAGE', key, 'SAMPLES', 0));
    }
    return {
      jobs,
      outputBytes: Buffer.byteLength(OUTPUT),
      perJobBytes: Math.round((after - before) / jobs),
      eventsStreamPerJobBytes: Math.round((eventsAfter - eventsBefore) / jobs),
      keys,
    };
  } finally {
    raw.disconnect();
    await server.kill();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The bench's rows for the figure: per finished job in all, and without the capped events stream. */
export function redisMemoryRows(
  m: RedisMemoryFigure,
): { figure: string; stevedore: string; baseline: string; ratio: string; target: string }[] {
  const kb = (bytes: number): string => (bytes / 1024).toFixed(1);
  return [
    {
      figure: `Redis used_memory per finished job (KB; ${m.jobs} jobs, ${m.outputBytes} B of output each)`,
      stevedore: kb(m.perJobBytes),
      baseline: `of it BullMQ's events stream (capped at 10,000 entries): ${kb(m.eventsStreamPerJobBytes)}`,
      ratio: '',
      target: `< 4 KB beyond output, events stream aside: ${kb(m.perJobBytes - m.eventsStreamPerJobBytes)}`,
    },
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await measureRedisMemory(Number(process.argv[2] ?? 200)), null, 2));
}
