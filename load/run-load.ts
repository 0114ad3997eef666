import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { Job, Queue, QueueEvents } from 'bullmq';
import type Dockerode from 'dockerode';
import { StevedoreClient } from '../src/jobs/client.js';
import { connect } from '../src/jobs/connection.js';
import { coerceError, InvalidSpecError } from '../src/jobs/errors.js';
import { bullmqKeys } from '../src/jobs/keys.js';
import { acknowledgedBy, type Durability } from '../src/jobs/replicas.js';
import type { JobResult } from '../src/jobs/result.js';
import type { Replica, Target, Workers } from './deployment.js';
import { EngineRunCounter, queueContainers, usedMemory } from './engine.js';
import { allowedStarts, checkResult, type Mix, type PlannedJob, planJobs, sha256, specFor } from './mix.js';
import { type LoadReport, summarize } from './report.js';
import { MetricsCollector } from './worker-metrics.js';

export interface LoadOptions {
  target: Target;
  workers: Workers;
  /** Every engine the workers run jobs on: starts are counted and leftovers looked for on each. */
  engines: Dockerode[];
  image: string;
  count: number;
  mix: Mix;
  /**
   * What is done to the deployment while jobs run (a worker killed, a Redis master killed), told
   * how far the run is; returns what it did, for the report. Absent: nothing.
   */
  disturbance?: (progress: LoadProgress) => Promise<string[]>;
  /** Time between two submits; 0 or absent: every job is submitted at once. */
  intervalMs?: number;
  /**
   * Submits confirmed by this many replicas (Redis WAIT): the client's `durability` option, and
   * the same WAIT after each plain BullMQ add. A submit not confirmed counts as refused, the
   * producer told, not as a job the run must get a result for.
   */
  durability?: Durability;
  /** The whole run's bound: jobs without a result by then count as lost. */
  timeoutMs: number;
  say: (line: string) => void;
}

/** Time a finished job's container may take to be removed after its result is stored. */
const REMOVAL_SETTLE_MS = 20_000;
/** How often unfinished plain-BullMQ jobs are looked up directly, in case an event was missed. */
const SWEEP_MS = 3_000;
/** How often a cancel job's progress is read until it is running. */
const CANCEL_POLL_MS = 200;
const PREFIX = 'bull';

/** How far a run is, as shares of its jobs (0–1). */
export interface LoadProgress {
  /** Jobs whose submit has begun. */
  submitted(): number;
  /** Jobs with a result, or that need none (refused at submit). */
  finished(): number;
}

export interface Outcome {
  job: PlannedJob;
  submittedAt: number;
  finishedAt?: number;
  result?: JobResult;
  /** Invalid specs the client refused before they reached the queue (the client's own check). */
  refused?: boolean;
  /**
   * Why a submit failed, the producer told (a Redis error, or too few replicas confirmed it):
   * the job may still run, but the run does not wait for its result.
   */
  submitError?: string;
  /** Why the client's waitForResult gave up on a job; its result was then read directly. */
  waitError?: string;
}

/** A run's figures, and the jobs they were made from. */
export interface LoadRun {
  report: LoadReport;
  outcomes: Outcome[];
}

/** Runs one load test against the workers and returns its figures. */
export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  return (await loadRun(options)).report;
}

/** Runs one load test against the workers and returns its figures with every job's outcome. */
export async function loadRun(options: LoadOptions): Promise<LoadRun> {
  const { target, engines } = options;
  const runId = Date.now().toString(36);
  const jobs = planJobs(options.count, options.mix, runId);
  const outcomes = new Map(jobs.map((job) => [job.id, { job, submittedAt: 0 } as Outcome]));
  // Redis going away mid-run is reported as lost jobs, not as one line per reconnect attempt.
  let redisErrors = 0;
  const countError = (): void => {
    redisErrors += 1;
    if (redisErrors === 1) options.say('Redis connection error; the load test goes on retrying');
  };
  const redis = connect(target.redis, countError);
  const counters = engines.map((engine) => new EngineRunCounter(engine, target.queue));
  const client = new StevedoreClient({
    redis: target.redis,
    queue: target.queue,
    durability: options.durability,
    onError: countError,
  });
  // BullMQ leaves connections it was given open on close(): these are quit in `finally`.
  const connections = [redis.duplicate(), redis.duplicate()] as const;
  const queue = new Queue(target.queue, { connection: connections[0], prefix: PREFIX });
  const events = new QueueEvents(target.queue, { connection: connections[1], prefix: PREFIX });
  for (const connection of connections) connection.on('error', countError);
  queue.on('error', countError);
  events.on('error', countError);
  const rss = new Map<string, number>();
  // Jobs the run still waits for: each leaves with its result, or when it needs none.
  const awaited = new Set(jobs.map((job) => job.id));
  let started = 0;
  let done: () => void = () => undefined;
  const allDone = new Promise<void>((resolve) => {
    done = resolve;
  });
  const release = (id: string) => {
    awaited.delete(id);
    if (awaited.size === 0) done();
  };
  // A job told as refused may still run: a result that comes anyway is kept and checked.
  const settle = (id: string, result: JobResult) => {
    const outcome = outcomes.get(id);
    if (!outcome || outcome.result || outcome.refused) return;
    outcome.result = result;
    outcome.finishedAt = Date.now();
    release(id);
  };
  // Plain BullMQ: the result is the completed job's returnvalue, or the side key for a failed one.
  const sideResult = async (id: string) => {
    const text = await redis.get(`${PREFIX}:${target.queue}:stevedore:result:${id}`);
    return text ? (JSON.parse(text) as JobResult) : null;
  };
  const plainResult = async (id: string): Promise<JobResult | null> => {
    const job = await Job.fromId<unknown, JobResult>(queue, id);
    if (job?.finishedOn && job.returnvalue) return job.returnvalue;
    return sideResult(id);
  };
  const plain = (id: string) => outcomes.get(id)?.job.via === 'bullmq';
  // Read directly: plain BullMQ jobs, and client jobs whose waitForResult gave up.
  const swept = (o: Outcome) => o.job.via === 'bullmq' || o.waitError !== undefined;
  events.on('completed', ({ jobId, returnvalue }) => {
    if (!plain(jobId)) return;
    const value =
      typeof returnvalue === 'string'
        ? (JSON.parse(returnvalue) as JobResult)
        : (returnvalue as unknown as JobResult);
    settle(jobId, value);
  });
  events.on('failed', ({ jobId }) => {
    if (plain(jobId)) void sideResult(jobId).then((r) => r && settle(jobId, r));
  });
  const sweep = setInterval(() => {
    for (const o of outcomes.values()) {
      if (swept(o) && o.submittedAt && !o.result && !o.refused) {
        void plainResult(o.job.id).then((r) => r && settle(o.job.id, r));
      }
    }
  }, SWEEP_MS);
  // The workers' own /metrics, scraped as Prometheus would, to set beside the load test's counts.
  const scraped = new MetricsCollector();
  const scrape = (replicas: Replica[]) =>
    Promise.all(
      replicas.map(async (r) => {
        if (!r.metrics) return;
        await r.metrics().then(
          (text) => scraped.add(r.name, text),
          () => scraped.missed(),
        );
      }),
    );
  const sampler = setInterval(() => {
    void options.workers.replicas().then((replicas) =>
      Promise.all([
        ...replicas.map(async (r) => {
          const bytes = await r.rssBytes().catch(() => null);
          if (bytes !== null) rss.set(r.name, Math.max(rss.get(r.name) ?? 0, bytes));
        }),
        scrape(replicas),
      ]),
    );
  }, 2_000);

  try {
    await events.waitUntilReady();
    for (const counter of counters) await counter.open();
    const memoryBefore = usedMemory(await redis.info('memory'));
    const startedAt = Date.now();
    const add = async (job: PlannedJob): Promise<void> => {
      await queue.add('run', specFor(job, options.image), {
        jobId: job.id,
        attempts: 3,
        backoff: { type: 'exponential', delay: 1000 },
      });
      if (!options.durability) return;
      // The producer's own WAIT, on the connection that wrote the job (as the client does).
      const key = bullmqKeys.job({ prefix: PREFIX, queue: target.queue }, job.id);
      const acknowledged = await acknowledgedBy(connections[0], key, options.durability);
      if (acknowledged < options.durability.replicas)
        throw new Error(
          `${acknowledged} of ${options.durability.replicas} replicas confirmed the add within ${options.durability.timeoutMs} ms`,
        );
    };
    async function submitOne(job: PlannedJob): Promise<void> {
      const outcome = outcomes.get(job.id) as Outcome;
      outcome.submittedAt = Date.now();
      try {
        if (job.via === 'bullmq') await add(job);
        else await client.submit(specFor(job, options.image), { jobId: job.id });
      } catch (error) {
        if (job.kind === 'invalid' && error instanceof InvalidSpecError) outcome.refused = true;
        else outcome.submitError = coerceError(error).message;
        release(job.id);
        return;
      }
      if (job.via === 'client') {
        void client.waitForResult(job.id, { timeoutMs: options.timeoutMs }).then(
          (r) => settle(job.id, r),
          (error: unknown) => {
            // Read directly from now on; still none by the end: counted as lost below.
            outcome.waitError = coerceError(error).message;
          },
        );
      }
      if (job.kind === 'cancel') await cancelWhenRunning(client, job.id, options.timeoutMs);
    }
    const submitted: Promise<void>[] = [];
    const submitting = (async () => {
      for (const job of jobs) {
        started += 1;
        submitted.push(submitOne(job));
        if (options.intervalMs) await sleep(options.intervalMs);
      }
    })();
    const disturbance =
      options.disturbance?.({
        submitted: () => started / jobs.length,
        finished: () => (jobs.length - awaited.size) / jobs.length,
      }) ?? Promise.resolve([]);
    await Promise.race([allDone, sleep(options.timeoutMs)]);
    const elapsedMs = Date.now() - startedAt;
    await submitting;
    await Promise.allSettled(submitted);
    const actions = await disturbance;
    const leaked = (await Promise.all(engines.map((engine) => containersLeft(engine, target.queue)))).flat();
    const memoryAfter = usedMemory(await redis.info('memory'));
    const hashes = await outputHashes([...outcomes.values()]);
    await scrape(await options.workers.replicas()); // the last word of every worker still running
    const report = summarize({
      describe: options.workers.describe,
      outcomes: [...outcomes.values()],
      starts: mergeStarts(counters.map((counter) => counter.starts)),
      hashes,
      elapsedMs,
      memoryBefore,
      memoryAfter,
      rss,
      leaked,
      actions,
      check: checkResult,
      allowedStarts,
    });
    return { report: { ...report, metrics: scraped.summary() }, outcomes: [...outcomes.values()] };
  } finally {
    clearInterval(sweep);
    clearInterval(sampler);
    for (const counter of counters) counter.close();
    await events.close();
    await queue.close();
    await client.close();
    await Promise.all([redis, ...connections].map((c) => c.quit().catch(() => c.disconnect())));
  }
}

/** Waits for the job to report phase `running` (or to finish), then cancels it through the client. */
async function cancelWhenRunning(client: StevedoreClient, id: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const progress = await client.getProgress(id);
    if (progress?.phase === 'running') break;
    await new Promise((resolve) => setTimeout(resolve, CANCEL_POLL_MS));
  }
  await client.cancel(id);
}

/** The sha256 of each output job's stdout file, read on the host at the path its result names. */
async function outputHashes(outcomes: Outcome[]): Promise<Map<string, string | null>> {
  const hashes = new Map<string, string | null>();
  for (const o of outcomes) {
    if (o.job.kind !== 'output' || !o.result?.stdout.path) continue;
    const data = await readFile(o.result.stdout.path).catch(() => null);
    hashes.set(o.job.id, data ? sha256(data) : null);
  }
  return hashes;
}

/** The queue's containers still there once finished jobs have had time to be removed. */
async function containersLeft(docker: Dockerode, queue: string): Promise<string[]> {
  const deadline = Date.now() + REMOVAL_SETTLE_MS;
  for (;;) {
    const left = await queueContainers(docker, queue);
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** The starts per job id, counted on each engine, as one map: a job started on two engines ran twice. */
function mergeStarts(counted: Map<string, string[]>[]): Map<string, string[]> {
  const all = new Map<string, string[]>();
  for (const starts of counted)
    for (const [id, list] of starts) all.set(id, [...(all.get(id) ?? []), ...list]);
  return all;
}
