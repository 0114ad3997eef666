import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DelayedError, WaitingError } from 'bullmq';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/worker.js';
import { InfrastructureError } from '../../src/jobs/errors.js';
import type { AttemptRecord, JobResult } from '../../src/jobs/result.js';
import type { JobSpecInput } from '../../src/jobs/spec.js';
import type { JobRecords } from '../../src/worker/job-records.js';
import { WorkerEvents } from '../../src/worker/observer.js';
import { loadWorkerPolicy } from '../../src/worker/policy-load.js';
import { type ContainerJob, createProcessor } from '../../src/worker/processor.js';
import { RunningJobs } from '../../src/worker/running-jobs.js';
import { StubExecutor, type StubScript } from '../helpers/stub-executor.js';

/** A BullMQ job as the processor sees it, kept in memory: what it was moved to, what it published. */
class MemoryJob implements ContainerJob {
  attemptsMade = 0;
  attemptsStarted = 1;
  timestamp = Date.now();
  progress: ContainerJob['progress'] = 0;
  moved: { to: 'wait' } | { to: 'delayed'; at: number } | null = null;
  /** How many times the container had been closed when the job was moved. */
  closesWhenMoved = -1;

  constructor(
    readonly id: string,
    public data: JobSpecInput,
    private readonly executor: StubExecutor,
  ) {}

  async updateProgress(progress: ContainerJob['progress']): Promise<void> {
    this.progress = progress;
  }

  async updateData(data: JobSpecInput): Promise<void> {
    this.data = data;
  }

  async moveToWait(): Promise<number> {
    this.moved = { to: 'wait' };
    this.closesWhenMoved = this.executor.count('close');
    return 0;
  }

  async moveToDelayed(at: number): Promise<void> {
    this.moved = { to: 'delayed', at };
  }
}

let logDir: string;
beforeEach(async () => {
  logDir = await mkdtemp(join(tmpdir(), 'stevedore-processor-'));
});
afterEach(async () => {
  await rm(logDir, { recursive: true, force: true });
});

/** A processor on a stub executor, with in-memory job records and books. */
async function stubProcessor(
  script: StubScript = {},
  liveRuntimes: string[] = ['docker'],
  /** The lock token the job is held by now; a write fenced with another token is refused. */
  lockHolder = 'token-1',
  /** Why the worker's engine is away (EngineGate), if it is. */
  engineAway: string | null = null,
) {
  const config = loadConfig({ HOME: logDir, STEVEDORE_QUEUE: 'q1', STEVEDORE_WORKER_ID: 'w1' });
  const executor = new StubExecutor(script);
  const history: { jobId: string; run: AttemptRecord }[] = [];
  const sideResults: JobResult[] = [];
  const records: JobRecords = {
    isCancelled: async () => false,
    writeSideResult: async (result, token, run) => {
      if (token !== lockHolder) return false;
      sideResults.push(result);
      if (run) history.push({ jobId: result.jobId, run });
      return true;
    },
    liveRuntimes: async () => liveRuntimes,
    history: {
      read: async (jobId) => history.filter((h) => h.jobId === jobId).map((h) => h.run),
      add: async (jobId, run) => {
        history.push({ jobId, run });
      },
    },
  };
  const held = new Map<string, () => Promise<void>>();
  const finished: string[] = [];
  const events = new WorkerEvents();
  events.on('job-finished', ({ jobId, state }) => finished.push(`${jobId}: ${state}`));
  const logger = pino({ level: 'silent' });
  const jobs = new RunningJobs(logger, () => undefined);
  const made: string[] = [];
  const processor = createProcessor({
    config: { ...config, logDir },
    deployment: 'a1b2c3d4e5f6',
    runtime: {
      kind: 'docker',
      capabilities: executor.capabilities,
      mountPathProblem: () => null,
      listContainers: async () => [],
      containerState: async () => null,
      removeContainer: async () => undefined,
    },
    makeExecutor: ({ name }) => {
      made.push(name);
      return executor;
    },
    policy: await loadWorkerPolicy(config),
    trusted: undefined,
    records,
    jobs,
    books: {
      hold: (jobId, release) => held.set(jobId, release),
      releaseNow: (jobId) => void held.get(jobId)?.(),
    },
    idle: { runEnded: () => undefined },
    events,
    logger,
    engineAway: () => engineAway,
  });
  const job = (data: Partial<JobSpecInput> = {}) =>
    new MemoryJob('job-1', { image: 'stub/image:1', command: ['prog'], ...data }, executor);
  return { processor, executor, job, history, sideResults, held, finished, jobs, made };
}

describe('the job processor on a stub executor', () => {
  it('returns the result of a run, and leaves its container until BullMQ has stored it', async () => {
    const p = await stubProcessor({ exitCode: 3 });
    const result = await p.processor(p.job());
    expect(result).toMatchObject({ jobId: 'job-1', state: 'Complete', exitCode: 3 });
    expect(p.finished).toEqual(['job-1: Complete']);
    expect(p.made).toHaveLength(1);
    expect(p.executor.count('close')).toBe(0);
    await p.held.get('job-1')?.();
    expect(p.executor.count('close')).toBe(1);
    expect(p.jobs.takenIds()).toEqual([]);
    expect(p.jobs.running()).toEqual([]);
  });

  it('an infrastructure failure is thrown for BullMQ to retry, with the run in the history and the side result', async () => {
    const failure = new InfrastructureError('starting', 'the engine did not answer');
    const p = await stubProcessor({ failures: { start: failure } });
    await expect(p.processor(p.job(), 'token-1')).rejects.toBe(failure);
    expect(p.history.map((h) => h.run.state)).toEqual(['Failed']);
    expect(p.sideResults).toMatchObject([{ jobId: 'job-1', state: 'Failed', reason: 'infra' }]);
    expect(p.finished).toEqual(['job-1: Failed']);
    expect(p.held.has('job-1')).toBe(true);
  });

  it('a failure whose fenced write finds the lock held by another token writes no result: lost lock, run noted', async () => {
    const failure = new InfrastructureError('starting', 'the engine did not answer');
    const p = await stubProcessor({ failures: { start: failure } }, ['docker'], 'token-of-another-worker');
    await expect(p.processor(p.job(), 'token-1')).rejects.toThrow(
      /lost the job lock before writing its result/,
    );
    expect(p.sideResults).toEqual([]);
    expect(p.finished).toEqual([]);
    expect(p.history.map((h) => h.run.error)).toEqual([
      'lost the job lock before writing its result: another worker may own this job; no result written',
    ]);
    // Nothing was started, so nothing is left for the new owner: the container goes at once.
    await new Promise((r) => setImmediate(r));
    expect(p.executor.count('close')).toBe(1);
  });

  it('a job taken while the engine is away goes back to wait, no attempt spent, and no container is made', async () => {
    const p = await stubProcessor({}, ['docker'], 'token-1', 'the docker engine has not answered for 31 s');
    const job = p.job();
    await expect(p.processor(job, 'token-1')).rejects.toBeInstanceOf(WaitingError);
    expect(job.moved).toEqual({ to: 'wait' });
    expect(p.made).toEqual([]);
    expect(p.jobs.takenIds()).toEqual([]);
  });

  it('a shutdown stops and removes the container, notes the run, then puts the job back to wait', async () => {
    const p = await stubProcessor({ runsUntilExited: true });
    const job = p.job({ stopGraceSeconds: 0.01 });
    const done = p.processor(job);
    await p.executor.reached('wait');
    p.jobs.stop('job-1', 'shutdown');
    await expect(done).rejects.toBeInstanceOf(WaitingError);
    expect(job.moved).toEqual({ to: 'wait' });
    expect(job.closesWhenMoved).toBe(1);
    expect(p.history.map((h) => h.run.error)).toEqual([
      'worker shut down; container stopped, job put back without spending an attempt',
    ]);
    expect(p.finished).toEqual([]);
    expect(p.held.has('job-1')).toBe(false);
  });

  it('a shutdown that finds the container already exited completes the job with its exit code', async () => {
    // Between the program's own exit and wait() returning: put back, the job would run twice.
    const p = await stubProcessor({ exitCode: 3, holds: ['wait'] });
    const job = p.job({ stopGraceSeconds: 0.01 });
    const done = p.processor(job);
    await p.executor.reached('wait');
    p.jobs.stop('job-1', 'shutdown');
    await p.executor.reached('stop');
    p.executor.release('wait');
    await expect(done).resolves.toMatchObject({ state: 'Complete', reason: 'exited', exitCode: 3 });
    expect(job.moved).toBeNull();
    expect(p.history).toEqual([]);
    expect(p.finished).toEqual(['job-1: Complete']);
    expect(p.held.has('job-1')).toBe(true);
  });

  it('a job for a runtime another live worker runs goes back delayed, and no container is made', async () => {
    const p = await stubProcessor({}, ['docker', 'podman']);
    const job = p.job({ runtime: 'podman' });
    const before = Date.now();
    await expect(p.processor(job)).rejects.toBeInstanceOf(DelayedError);
    expect(job.moved).toMatchObject({ to: 'delayed' });
    expect(job.moved?.to === 'delayed' && job.moved.at).toBeGreaterThanOrEqual(before + 1_000);
    expect(p.made).toEqual([]);
    expect(p.jobs.takenIds()).toEqual([]);
  });
});
