import { join } from 'node:path';
import type Dockerode from 'dockerode';
import type { Durability } from '../src/jobs/replicas.js';
import { SentinelTopology } from '../test/helpers/redis-topology.js';
import { localWorkers, type Target } from './deployment.js';
import { FailoverSchedule } from './failover.js';
import { analyseFailovers, type FailoverAnalysis, renderFailovers } from './failover-report.js';
import type { Mix } from './mix.js';
import type { LoadReport } from './report.js';
import { loadRun } from './run-load.js';

/** A master and this many replicas, so one is left to confirm writes while the killed node comes back. */
const REPLICAS = 2;
/**
 * Submits and results confirmed by one replica (client `durability`, STEVEDORE_RESULT_REPLICAS),
 * waiting at most this long: the worker's default, far above a loopback replica's answer.
 */
const DURABILITY: Durability = { replicas: 1, timeoutMs: 1_000 };

export interface SentinelRunOptions {
  /** Worker processes, and each one's concurrency. */
  workers: number;
  concurrency: number;
  count: number;
  mix: Mix;
  /** Jobs submitted a second. */
  rate: number;
  /** Times the master is SIGKILLed, spread evenly over the submits. */
  failovers: number;
  image: string;
  /** The engine the workers run jobs on (the host's). */
  engine: Dockerode;
  /** Where the workers keep state and logs. */
  stateDir: string;
  timeoutMs: number;
  say: (line: string) => void;
}

export interface SentinelRun {
  report: LoadReport;
  analysis: FailoverAnalysis;
}

/**
 * One load run through Redis Sentinel (`npm run load -- --sentinel`): a master, two replicas and
 * three sentinels; local workers and the producers find the master through the sentinels;
 * submits and results are confirmed by a replica; and the master is SIGKILLed `failovers` times
 * while jobs come in at a steady rate.
 */
export async function sentinelRun(options: SentinelRunOptions): Promise<SentinelRun> {
  const { say } = options;
  const topology = await SentinelTopology.start({ replicas: REPLICAS });
  try {
    const target: Target = {
      redis: {
        sentinels: topology.sentinels.map((s) => ({ host: '127.0.0.1', port: s.port })),
        name: SentinelTopology.NAME,
      },
      queue: `load-${Date.now().toString(36)}`,
      logDir: join(options.stateDir, 'logs'),
    };
    const workers = await localWorkers(target, options.workers, options.concurrency, options.stateDir, {
      env: {
        STEVEDORE_RESULT_REPLICAS: String(DURABILITY.replicas),
        STEVEDORE_RESULT_REPLICAS_TIMEOUT_MS: String(DURABILITY.timeoutMs),
      },
    });
    const kills = `${options.failovers} Redis master kill${options.failovers === 1 ? '' : 's'}`;
    say(`${options.count} jobs on ${workers.describe}, with ${kills}`);
    const schedule = await FailoverSchedule.watching(topology, options.failovers, say);
    try {
      const run = await loadRun({
        target,
        workers,
        engines: [options.engine],
        image: options.image,
        count: options.count,
        mix: options.mix,
        disturbance: schedule.run,
        durability: DURABILITY,
        intervalMs: 1000 / options.rate,
        timeoutMs: options.timeoutMs,
        say,
      });
      // Each job slot's first job makes its namespace holder: those are the warm-up.
      const warmup = options.workers * options.concurrency;
      const analysis = analyseFailovers(schedule.records, run.outcomes, { warmup, events: schedule.events });
      return { report: run.report, analysis };
    } finally {
      schedule.close();
      // SIGTERM: each worker shuts down and removes its own namespace holders.
      await workers.close();
    }
  } finally {
    await topology.close();
  }
}

/** What the run says besides the load table: its settings, its correctness, and the failover tables. */
export function renderSentinelRun(options: SentinelRunOptions, run: SentinelRun): string {
  const { report, analysis } = run;
  const { failovers } = options;
  const confirmed = report.jobs - report.refused - report.told.length;
  return [
    `A master, ${REPLICAS} replicas and 3 sentinels (down-after-milliseconds 1000) on loopback; ${options.workers} worker processes (concurrency ${options.concurrency} each) and the load test's producers find the master through the sentinels; ${options.count} jobs submitted at ${options.rate} a second; the master SIGKILLed ${failovers} time${failovers === 1 ? '' : 's'}, the killed node started again once each failover was over. Submits confirmed by WAIT for ${DURABILITY.replicas} replica within ${DURABILITY.timeoutMs} ms (the client's \`durability\`, and the same WAIT after each plain BullMQ add), results by \`STEVEDORE_RESULT_REPLICAS=${DURABILITY.replicas}\`.`,
    '',
    `Of the ${report.jobs} jobs, the client's own check refused ${report.refused} invalid specs, and ${report.told.length} submits failed with an error, the producer told (a Redis error, or too few replicas confirming in time). Of the ${confirmed} confirmed: ${report.lost.length} without a result (lost), ${report.runTwice.length} run twice (container starts, as the engine counted them), ${report.wrong.length} with a wrong result (1 MiB outputs by sha256), and ${report.leaked.length} containers leaked.`,
    '',
    renderFailovers(analysis),
  ].join('\n');
}

/** Whether the run failed: anything lost, run twice, wrong or leaked, or a worker that stopped after a failover. */
export function sentinelRunFailed(run: SentinelRun): boolean {
  const r = run.report;
  return (
    r.lost.length + r.runTwice.length + r.wrong.length + r.leaked.length > 0 ||
    run.analysis.failovers.some((f) => f.stopped.length > 0 || f.firstNewJobMs === null)
  );
}
