import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import Dockerode from 'dockerode';
import { execa, type ResultPromise } from 'execa';
import { StevedoreClient } from '../../src/jobs/client.js';
import { LABELS, labelFilters } from '../../src/jobs/names.js';
import type { JobResult } from '../../src/jobs/result.js';
import { RedisServerProcess } from '../../src/worker/redis-server.js';
import { removeHoldersOf } from '../helpers/holders.js';

const MAIN = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');

export interface ChaosOptions {
  jobs: number;
  workers: number;
  /** Lines each job prints, 0.1 s apart. */
  lines: number;
  /** Pause between kills, randomised ±50 %. */
  killEveryMs: number;
  /**
   * Kills only this long from the start (default: the whole time limit), then lets the jobs
   * finish. Without a quiet end, on a slow machine a job can be killed in every run until the
   * limit (a worker that takes 4 s to start, killed every 2 s, finishes nothing).
   */
  killForMs?: number;
  timeLimitMs: number;
  image: string;
  imageTarball: string;
  seed?: number;
  log?: (line: string) => void;
}

export interface ChaosSummary {
  jobs: number;
  completed: number;
  kills: number;
  redisRestarts: number;
  adoptions: number;
  reruns: number;
  duplicates: number;
  wrong: string[];
  leaks: number;
  seconds: number;
}

/** A small deterministic random source, so a failing run can be repeated with its seed. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const expectedOutput = (job: number, lines: number): string =>
  Array.from({ length: lines }, (_, i) => `job-${job}-line-${i + 1}\n`).join('');

/**
 * Submits jobs, SIGKILLs worker processes at random moments, restarts Redis once and the
 * workers again and again; then checks that every job has exactly one Complete result with the
 * right exit code and byte-exact output, that no container started twice, and none is left.
 */
export async function chaos(o: ChaosOptions): Promise<ChaosSummary> {
  const log = o.log ?? (() => undefined);
  const rand = random(o.seed ?? Date.now());
  const started = Date.now();
  const dir = await mkdtemp(join(tmpdir(), 'stevedore-chaos-'));
  const queue = `chaos-${Date.now().toString(36)}`;
  const redis = new RedisServerProcess({ dataDir: join(dir, 'redis') });
  await redis.start();
  const docker = new Dockerode();
  const startsPerJob = new Map<string, number>();
  const events = (await docker.getEvents({
    filters: { type: ['container'], event: ['start'], label: labelFilters(queue) },
  })) as NodeJS.ReadableStream & { destroy(): void };
  let pending = '';
  events.on('data', (chunk: Buffer) => {
    const lines = (pending + chunk.toString()).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines.filter(Boolean)) {
      const id = (JSON.parse(line) as { Actor: { Attributes: Record<string, string> } }).Actor.Attributes[
        LABELS.jobId
      ];
      if (id) startsPerJob.set(id, (startsPerJob.get(id) ?? 0) + 1);
      if (id && process.env.CHAOS_DEBUG)
        log(
          `event ${JSON.stringify({ t: Date.now() - started, job: id, w: (JSON.parse(line) as { Actor: { Attributes: Record<string, string> } }).Actor.Attributes[LABELS.workerId], a: (JSON.parse(line) as { Actor: { Attributes: Record<string, string> } }).Actor.Attributes[LABELS.attempt] })}`,
        );
    }
  });

  // The default policy loads no tarballs: allow the one the jobs use.
  const policyPath = join(dir, 'policy.json');
  await writeFile(policyPath, JSON.stringify({ imageTarballs: [{ hostPath: dirname(o.imageTarball) }] }));
  let workerCount = 0;
  const workers = new Set<ResultPromise>();
  const startWorker = (): void => {
    workerCount += 1;
    const child = execa(process.execPath, ['--import', 'tsx', MAIN, 'worker'], {
      env: {
        REDIS_URL: redis.url,
        STEVEDORE_QUEUE: queue,
        STEVEDORE_LOG_DIR: join(dir, 'logs'),
        STEVEDORE_STATE_DIR: join(dir, `state-${workerCount}`),
        STEVEDORE_LOCK_DURATION_MS: '5000',
        STEVEDORE_LOG_DRIVER: 'local',
        STEVEDORE_CONCURRENCY: '3',
        STEVEDORE_WORKER_ID: `chaos-${workerCount}`,
        STEVEDORE_POLICY: policyPath,
        LOG_LEVEL: 'warn',
      },
      reject: false,
      buffer: false,
    });
    workers.add(child);
    void child.finally(() => workers.delete(child));
  };
  for (let i = 0; i < o.workers; i++) startWorker();

  const client = new StevedoreClient({ redis: redis.url, queue });
  let kills = 0;
  let redisRestarts = 0;
  const results = new Map<string, JobResult>();
  try {
    const ids: string[] = [];
    for (let n = 0; n < o.jobs; n++) {
      const command = `i=1; while [ $i -le ${o.lines} ]; do echo job-${n}-line-$i; i=$((i+1)); sleep 0.1; done; exit ${n % 7}`;
      const { id } = await client.submit(
        { image: o.image, imageTarball: o.imageTarball, command: ['sh', '-c', command], stopGraceSeconds: 0 },
        { jobId: `chaos-job-${n}`, attempts: 5, backoff: 200 },
      );
      ids.push(id);
    }
    const waiting = Promise.all(
      ids.map((id) =>
        client.waitForResult(id, { timeoutMs: o.timeLimitMs }).then((r) => {
          results.set(id, r);
        }),
      ),
    );
    let done = false;
    // Settled either way; the rejection itself is read below.
    waiting.then(
      () => {
        done = true;
      },
      () => {
        done = true;
      },
    );
    const deadline = started + Math.min(o.killForMs ?? o.timeLimitMs, o.timeLimitMs);
    while (!done && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, o.killEveryMs * (0.5 + rand())));
      if (done) break;
      const victims = [...workers];
      const victim = victims[Math.floor(rand() * victims.length)];
      if (victim) {
        victim.kill('SIGKILL');
        kills += 1;
        log(`killed a worker (${kills} so far); ${results.size}/${o.jobs} results`);
        startWorker();
      }
      if (redisRestarts === 0 && kills === 2) {
        // Down for less than a lock duration: locks outlive it (a longer outage is the outage test's).
        await redis.stop();
        await new Promise((r) => setTimeout(r, 1_000));
        await redis.start();
        redisRestarts += 1;
        log('restarted Redis');
      }
    }
    await waiting.catch((error: Error) => log(`not every job finished: ${error.message}`));
  } finally {
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all([...workers].map((w) => w.catch(() => undefined)));
    await client.close();
    events.destroy();
  }

  const wrong: string[] = [];
  for (let n = 0; n < o.jobs; n++) {
    const id = `chaos-job-${n}`;
    const r = results.get(id);
    if (!r) {
      wrong.push(`${id}: no result`);
      continue;
    }
    if (r.state !== 'Complete' || r.exitCode !== n % 7) {
      wrong.push(`${id}: ${r.state}/${r.reason} exit ${r.exitCode} (${r.error?.message ?? ''})`);
      continue;
    }
    const text = r.stdout.path ? await readFile(r.stdout.path, 'utf8').catch(() => '') : '';
    if (text !== expectedOutput(n, o.lines)) wrong.push(`${id}: output differs (${text.length} bytes)`);
  }
  const leftovers = await docker.listContainers({
    all: true,
    filters: { label: labelFilters(queue) },
  });
  for (const c of leftovers) await docker.getContainer(c.Id).remove({ force: true });
  // Namespace holders of the SIGKILLed workers would end by themselves within their lifetime;
  // they are not job containers, so not leaks, but a test leaves nothing running.
  await removeHoldersOf(docker, queue);
  await redis.stop();
  await rm(dir, { recursive: true, force: true });
  const starts = [...startsPerJob.values()];
  return {
    jobs: o.jobs,
    completed: [...results.values()].filter((r) => r.state === 'Complete').length,
    kills,
    redisRestarts,
    adoptions: [...results.values()].filter((r) => r.adopted).length,
    reruns: [...results.values()].filter((r) => r.attempt > 1 && !r.adopted).length,
    duplicates: starts.filter((n) => n > 1).length,
    wrong,
    leaks: leftovers.length,
    seconds: Math.round((Date.now() - started) / 1000),
  };
}

export function summaryTable(s: ChaosSummary): string {
  const rows: [string, string | number][] = [
    ['jobs', s.jobs],
    ['completed', s.completed],
    ['worker kills (SIGKILL)', s.kills],
    ['Redis restarts', s.redisRestarts],
    ['adoptions', s.adoptions],
    ['re-runs', s.reruns],
    ['duplicates (a container started twice)', s.duplicates],
    ['wrong or missing results', s.wrong.length],
    ['leaked containers', s.leaks],
    ['seconds', s.seconds],
  ];
  return ['| | |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join('\n');
}
