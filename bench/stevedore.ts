import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import type { StevedoreClient } from '../src/jobs/client.js';
import type { JobSpecInput } from '../src/jobs/spec.js';
import { pool } from './stats.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');

/** A real `stevedore worker` process on its own queue, as production runs it. */
export class WorkerProcess {
  /** Workers started and not yet stopped, for an interrupted bench to stop first. */
  static readonly running = new Set<WorkerProcess>();

  private constructor(
    readonly child: ResultPromise,
    readonly queue: string,
  ) {}

  static async start(
    redisUrl: string,
    concurrency: number,
    stateDir: string,
    env: Record<string, string> = {},
  ): Promise<WorkerProcess> {
    const queue = `bench-${concurrency}-${Date.now()}-${Math.random().toString(36).slice(2, 6)}`;
    // Run as the `stevedore` bin runs: its shebang sets the worker's V8 flags.
    const child = execa(CLI, ['worker'], {
      env: {
        REDIS_URL: redisUrl,
        STEVEDORE_QUEUE: queue,
        STEVEDORE_CONCURRENCY: String(concurrency),
        STEVEDORE_STATE_DIR: stateDir,
        STEVEDORE_SHUTDOWN_GRACE_MS: '0',
        LOG_LEVEL: 'info',
        ...env,
      },
      reject: false,
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('worker started')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`bench worker exited with ${code}`)));
    });
    const worker = new WorkerProcess(child, queue);
    WorkerProcess.running.add(worker);
    return worker;
  }

  /** [current RSS, peak RSS] in bytes, from /proc. */
  async memory(): Promise<{ rss: number; peak: number }> {
    const status = await readFile(`/proc/${this.child.pid}/status`, 'utf8');
    const kib = (field: string): number =>
      Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
    return { rss: kib('VmRSS'), peak: kib('VmHWM') };
  }

  async stop(): Promise<void> {
    this.child.kill('SIGTERM');
    await this.child;
    WorkerProcess.running.delete(this);
  }
}

/** Submits `jobs` jobs at once and waits for every result; returns the wall time. */
export async function stevedoreBatch(
  client: StevedoreClient,
  spec: JobSpecInput,
  jobs: number,
): Promise<number> {
  const t0 = performance.now();
  const ids = await Promise.all(Array.from({ length: jobs }, () => client.submit(spec, { attempts: 1 })));
  const results = await Promise.all(ids.map(({ id }) => client.waitForResult(id, { timeoutMs: 300_000 })));
  const elapsed = performance.now() - t0;
  const bad = results.find((r) => r.exitCode !== 0);
  if (bad)
    throw new Error(`bench job ${bad.jobId} did not succeed: ${JSON.stringify(bad.error ?? bad.reason)}`);
  return elapsed;
}

/** Submit → result visible, one job at a time; returns each job's milliseconds. */
export async function stevedoreLatencies(
  client: StevedoreClient,
  spec: JobSpecInput,
  jobs: number,
): Promise<number[]> {
  const times: number[] = [];
  await pool(jobs, 1, async () => {
    times.push((await stevedoreJob(client, spec)).ms);
  });
  return times;
}

/**
 * One job, submit → result visible: its milliseconds, and how many of them the worker spent
 * waiting on the engine (the creating, starting and running phases).
 */
export async function stevedoreJob(
  client: StevedoreClient,
  spec: JobSpecInput,
): Promise<{ ms: number; engineMs: number }> {
  const t0 = performance.now();
  const { id } = await client.submit(spec, { attempts: 1 });
  const result = await client.waitForResult(id, { timeoutMs: 60_000 });
  const ms = performance.now() - t0;
  const p = result.phases;
  return { ms, engineMs: (p.creating ?? 0) + (p.starting ?? 0) + (p.running ?? 0) };
}
