import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DelayedError, UnrecoverableError, WaitingError } from 'bullmq';
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
  opts: ContainerJob['opts'] = { attempts: 3, backoff: { type: 'exponential', delay: 1000 } };
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
  liveEngines: string[] = ['engine-here'],
  queueVerdict: 'none' | 'timed-out' = 'none',
  /** Thrown by makeExecutor: a failure after the job counts as running, before its run starts. */
  makeExecutorError?: Error,
) {
  const config = loadConfig({ HOME: logDir, STEVEDORE_QUEUE: 'q1', STEVEDORE_WORKER_ID: 'w1' });
  const executor = new StubExecutor(script);
  const history: { jobId: string; run: AttemptRecord }[] = [];
  const sideResults: JobResult[] = [];
  const records: JobRecords = {
    isCancelled: async () => false,
    writeSideResult: async (result, token, run) => {
      // As the script: no token writes without a check.
      if (token !== undefined && token !== lockHolder) return false;
      sideResults.push(result);
      if (run) history.push({ jobId: result.jobId, run });
      return true;
    },
    addRunFenced: async (jobId, run, token) => {
      if (token !== undefined && token !== lockHolder) return false;
      history.push({ jobId, run });
      return true;
    },
    readSideResult: async () => null,
    queueGate: async () => queueVerdict,
    liveRuntimes: async () => liveRuntimes,
    liveEngines: async () => liveEngines,
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
    engine: 'engine-here',
    runtime: {
      kind: 'docker',
      capabilities: executor.capabilities,
      mountPathProblem: () => null,
      listContainers: async () => [],
      containerState: async () => null,
      removeContainer: async () => undefined,
    },
    makeExecutor: ({ name }) => {
      if (makeExecutorError) throw makeExecutorError;
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
  it('a job its queue timeout ended completes Cancelled, reason timeout, phase queued: no executor is made', async () => {
    const p = await stubProcessor({}, ['docker'], 'token-1', null, ['engine-here'], 'timed-out');
    const result = await p.processor(p.job({ timeouts: { queueSeconds: 5 } }));
    expect(result).toMatchObject({
      state: 'Cancelled',
      reason: 'timeout',
      containerId: null,
      error: { phase: 'queued' },
      timeout: { field: 'timeouts.queueSeconds', name: 'queueSeconds', phase: 'queued', seconds: 5 },
    });
    expect(p.made).toEqual([]);
    expect(p.sideResults).toHaveLength(1);
    expect(p.finished).toEqual(['job-1: Cancelled']);
  });

  it('a failure after the job counts as running, before its run starts, leaves no running job behind', async () => {
    const failure = new Error('no executor today');
    const p = await stubProcessor({}, ['docker'], 'token-1', null, ['engine-here'], 'none', failure);
    await expect(p.processor(p.job())).rejects.toBe(failure);
    expect(p.jobs.running()).toEqual([]);
    expect(p.jobs.takenIds()).toEqual([]);
  });

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

  it('an infrastructure failure is retried from infraLimit through BullMQ, recorded in the history with its budget', async () => {
    const failure = new InfrastructureError('starting', 'the engine did not answer');
    const p = await stubProcessor({ failures: { start: failure } });
    const job = p.job();
    const thrown = await p.processor(job).catch((error: unknown) => error);
    expect(thrown).toBeInstanceOf(Error);
    expect(thrown).not.toBeInstanceOf(UnrecoverableError);
    expect((thrown as Error).message).toMatch(
      /the engine did not answer \(reason infra: rerun 1 of 2 from infra\)/,
    );
    // BullMQ retries it once more, after the rules' backoff, whatever the producer's attempts.
    expect(job.opts).toMatchObject({ attempts: 2, backoff: { type: 'fixed', delay: 1000 } });
    expect(p.history.map((h) => h.run)).toMatchObject([
      { state: 'Failed', reason: 'infra', retried: true, budget: 'infra' },
    ]);
    expect(p.sideResults).toEqual([]);
    expect(p.finished).toEqual(['job-1: Failed']);
    expect(p.held.has('job-1')).toBe(true);
  });

  it('an infrastructure failure with its budget spent fails for good, with the side result', async () => {
    const failure = new InfrastructureError('starting', 'the engine did not answer');
    const p = await stubProcessor({ failures: { start: failure } });
    const job = p.job({ retry: { limit: 3, infraLimit: 0 } });
    await expect(p.processor(job)).rejects.toBeInstanceOf(UnrecoverableError);
    expect(p.sideResults).toMatchObject([
      {
        state: 'Failed',
        reason: 'infra',
        attempts: [{ retried: false, why: 'reason infra: infra of 0 spent' }],
      },
    ]);
    expect(p.history).toEqual([]);
  });

  it('reruns as a rule says, each run numbered, until the budget is spent; the history holds every run', async () => {
    const p = await stubProcessor({ exitCode: 75 });
    const job = p.job({
      retry: {
        limit: 2,
        backoff: { type: 'fixed', delaySeconds: 0 },
        rules: [{ onExitCodes: [75], action: 'retry' }],
      },
    });
    for (const run of [1, 2]) {
      await expect(p.processor(job)).rejects.toThrow(`exit code 75 (rule 0): rerun ${run} of 2 from limit`);
      expect(job.opts).toMatchObject({ attempts: job.attemptsMade + 2, backoff: { delay: 0 } });
      // As BullMQ does when it retries: the run counted, the job taken again.
      job.attemptsMade += 1;
      job.attemptsStarted += 1;
    }
    const result = await p.processor(job);
    expect(result).toMatchObject({
      state: 'Complete',
      exitCode: 75,
      attempt: 3,
      rule: { index: 0, action: 'retry' },
    });
    expect(result.attempts.map((a) => [a.attempt, a.retried, a.budget])).toEqual([
      [1, true, 'limit'],
      [2, true, 'limit'],
      [3, false, null],
    ]);
    expect(result.attempts.at(-1)?.why).toBe('exit code 75 (rule 0): limit of 2 spent');
  });

  it('never settles a run twice: a history entry BullMQ has not counted yet moves the run number on', async () => {
    const p = await stubProcessor({ exitCode: 0 });
    const job = p.job({ retry: { limit: 1 } });
    // A worker recorded run 1 as retried, then died before BullMQ counted it (attemptsMade 0).
    p.history.push({
      jobId: 'job-1',
      run: {
        attempt: 1,
        worker: 'dead',
        state: 'Complete',
        reason: 'exited',
        error: null,
        retried: true,
        budget: 'limit',
      },
    });
    job.attemptsStarted = 2;
    job.progress = { phase: 'done', at: new Date().toISOString(), history: [], attempt: 1, worker: 'dead' };
    const result = await p.processor(job);
    expect(result).toMatchObject({ attempt: 2, state: 'Complete', exitCode: 0 });
    expect(result.attempts.map((a) => a.attempt)).toEqual([1, 2]);
  });

  it('a complete rule turns an infrastructure failure into Complete, naming the rule', async () => {
    const failure = new InfrastructureError('starting', 'the engine did not answer');
    const p = await stubProcessor({ failures: { start: failure } });
    const job = p.job({ retry: { rules: [{ onReasons: ['infra'], action: 'complete' }] } });
    await expect(p.processor(job)).resolves.toMatchObject({
      state: 'Complete',
      reason: 'infra',
      rule: { index: 0, action: 'complete' },
    });
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
  describe('a job whose earlier run put its container on another engine', () => {
    const taken = (p: Awaited<ReturnType<typeof stubProcessor>>) => {
      const job = p.job();
      job.attemptsStarted = 2;
      job.progress = { phase: 'running', engine: 'engine-there' } as ContainerJob['progress'];
      return job;
    };

    it('is left for that host while a worker there is alive: back delayed, no container made', async () => {
      const p = await stubProcessor({ capabilities: { adopt: true } }, ['docker'], 'token-1', null, [
        'engine-here',
        'engine-there',
      ]);
      const job = taken(p);
      await expect(p.processor(job)).rejects.toBeInstanceOf(DelayedError);
      expect(job.moved).toMatchObject({ to: 'delayed' });
      expect(p.made).toEqual([]);
      expect(p.jobs.takenIds()).toEqual([]);
    });

    it('runs here once that host has been silent past the host-dead limit', async () => {
      const p = await stubProcessor({ capabilities: { adopt: true } }, ['docker'], 'token-1', null, [
        'engine-here',
      ]);
      const job = taken(p);
      await expect(p.processor(job)).resolves.toMatchObject({ state: 'Complete' });
      expect(job.moved).toBeNull();
      expect(p.made).toHaveLength(1);
      expect(job.progress).toMatchObject({ engine: 'engine-here' });
    });

    it('runs here on a runtime whose containers end with their worker (nothing to adopt anywhere)', async () => {
      const p = await stubProcessor({}, ['docker'], 'token-1', null, ['engine-here', 'engine-there']);
      const job = taken(p);
      await expect(p.processor(job)).resolves.toMatchObject({ state: 'Complete' });
      expect(p.made).toHaveLength(1);
    });
  });
});
