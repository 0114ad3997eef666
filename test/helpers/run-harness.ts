import { Writable } from 'node:stream';
import { pino } from 'pino';
import { DEFAULT_LIMITS } from '../../src/config/worker.js';
import type { JobProgress } from '../../src/jobs/progress.js';
import { type JobSpecInput, parseJobSpec } from '../../src/jobs/spec.js';
import type { RunContext } from '../../src/worker/run/context.js';
import type { RunOutcome } from '../../src/worker/run/outcome.js';
import { runJob } from '../../src/worker/run/run.js';
import { StubExecutor, type StubScript } from './stub-executor.js';

/** One line the run logged, as pino wrote it. */
export interface LogLine {
  level: number;
  msg: string;
  err?: { message: string };
  [key: string]: unknown;
}

/** Collects the run's log lines, and lets a test wait for one (an event, not a sleep). */
export class LogRecorder extends Writable {
  readonly lines: LogLine[] = [];
  private readonly waiting: { msg: string; resolve: (line: LogLine) => void }[] = [];

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    const line = JSON.parse(chunk.toString('utf8')) as LogLine;
    this.lines.push(line);
    for (const waiter of this.waiting.filter((w) => w.msg === line.msg)) waiter.resolve(line);
    callback();
  }

  /** Settles with the first line logged with message `msg`. */
  logged(msg: string): Promise<LogLine> {
    const seen = this.lines.find((line) => line.msg === msg);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiting.push({ msg, resolve }));
  }
}

/**
 * One run of `runJob` on a StubExecutor with in-memory publish and cancel flag: no Docker, no
 * Redis, no files. `cancelFlag` answers isCancelled(); `stop` is the run's stop signal.
 */
export function stubRun(
  spec: Partial<JobSpecInput> = {},
  script: StubScript = {},
  extra: Partial<RunContext> = {},
): {
  executor: StubExecutor;
  published: JobProgress[];
  logs: LogRecorder;
  /** Settles with the first published progress that `match` accepts. */
  progressSeen: (match: (progress: JobProgress) => boolean) => Promise<JobProgress>;
  stop: AbortController;
  cancelFlag: { set: boolean; reads: number };
  /** Starts the run (once); set the cancel flag or the stop signal first to stop it early. */
  run: () => Promise<RunOutcome>;
} {
  const executor = new StubExecutor(script);
  const published: JobProgress[] = [];
  const logs = new LogRecorder();
  const stop = new AbortController();
  const cancelFlag = { set: false, reads: 0 };
  const watchers: { match: (progress: JobProgress) => boolean; resolve: (p: JobProgress) => void }[] = [];
  const progressSeen = (match: (progress: JobProgress) => boolean): Promise<JobProgress> => {
    const seen = published.find(match);
    return seen ? Promise.resolve(seen) : new Promise((resolve) => watchers.push({ match, resolve }));
  };
  const ctx: RunContext = {
    jobId: 'job-1',
    attempt: 1,
    spec: parseJobSpec({ image: 'stub/image:1', command: ['prog'], ...spec }),
    executor,
    logger: pino({ level: 'debug' }, logs),
    worker: { host: 'stub-host', id: 'worker-1' },
    outputDir: null,
    limits: DEFAULT_LIMITS,
    enqueuedAt: Date.now(),
    stop: stop.signal,
    isCancelled: async () => {
      cancelFlag.reads += 1;
      return cancelFlag.set;
    },
    publish: async (progress) => {
      published.push(progress);
      for (const watcher of watchers.filter((w) => w.match(progress))) watcher.resolve(progress);
    },
    ...extra,
  };
  let outcome: Promise<RunOutcome> | undefined;
  const run = (): Promise<RunOutcome> => {
    outcome ??= runJob(ctx);
    return outcome;
  };
  return { executor, published, logs, progressSeen, stop, cancelFlag, run };
}
