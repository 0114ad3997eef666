import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Dockerode from 'dockerode';
import { execa } from 'execa';
import { COLD_UP_MS, ComposeStack } from '../test/helpers/compose.js';
import { TestRedis } from '../test/helpers/redis.js';
import { ScratchEngine } from '../test/helpers/scratch-engine.js';
import { composeWorkers, localWorkers, type Target, type Workers } from './deployment.js';
import { disturb } from './disturb.js';
import { queueHolders, removeHolders } from './engine.js';
import { DEFAULT_MIX, parseMix } from './mix.js';
import { LOAD_BLOCK, type LoadReport, renderTable, SENTINEL_BLOCK, writeBlock } from './report.js';
import { type LoadOptions, runLoad } from './run-load.js';
import {
  renderSentinelRun,
  type SentinelRunOptions,
  sentinelRun,
  sentinelRunFailed,
} from './sentinel-run.js';

/**
 * `npm run load -- [--jobs N] [--mix trivial=10,output=2,…] [--replicas N] [--compose]
 * [--scaling] [--engines 1,2,3] [--sentinel [--failovers N]] [--rate N] [--no-disrupt] [--no-write]
 * [--redis URL | --external] [--queue Q]`: the load test of issue 16, loopback only and bounded by --timeout.
 * docs/deployment.md "Load test". `--engines` runs once per count K: K private dockerds (the many-hosts rig's
 * "hosts"), a worker process bound to each, one Redis. `--sentinel` runs the workers and the client through
 * Redis Sentinel and SIGKILLs the master `--failovers` times while jobs come in at `--rate` a second.
 */
const IMAGE = 'stevedore-test/busybox:1';
const REPO = join(import.meta.dirname, '..');
/** Per replica, as in the compose stack's test settings. */
const DEFAULT_CONCURRENCY = 4;
/** The scaling runs: replica counts, each against one process with the same total concurrency. */
const SCALING_REPLICAS = [1, 2, 4];
/** Jobs a second the Sentinel run submits unless --rate says: under what two workers finish, so queues stay short. */
const SENTINEL_RATE = 2;

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '300' },
    mix: { type: 'string' },
    replicas: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: String(DEFAULT_CONCURRENCY) },
    compose: { type: 'boolean', default: false },
    scaling: { type: 'boolean', default: false },
    engines: { type: 'string' },
    sentinel: { type: 'boolean', default: false },
    failovers: { type: 'string', default: '2' },
    rate: { type: 'string' },
    'no-disrupt': { type: 'boolean', default: false },
    'no-write': { type: 'boolean', default: false },
    timeout: { type: 'string', default: '900' },
    redis: { type: 'string' },
    /** REDIS_URL from the environment, against workers run elsewhere (the loadgen profile). */
    external: { type: 'boolean', default: false },
    queue: { type: 'string', default: process.env.STEVEDORE_QUEUE ?? 'stevedore' },
  },
});

function positive(name: string, text: string | undefined): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name}: ${text} is not a positive integer`);
  return value;
}

const count = positive('jobs', values.jobs);
const replicas = positive('replicas', values.replicas);
const concurrency = positive('concurrency', values.concurrency);
const timeoutMs = positive('timeout', values.timeout) * 1000;
const failovers = positive('failovers', values.failovers);
const rate = values.rate === undefined ? undefined : Number(values.rate);
if (rate !== undefined && !(rate > 0))
  throw new Error(`--rate: ${values.rate} is not a positive number of jobs a second`);
const mix = values.mix ? parseMix(values.mix) : DEFAULT_MIX;
const docker = new Dockerode();
const externalRedis = values.redis ?? (values.external ? process.env.REDIS_URL : undefined);
if (values.external && !externalRedis) throw new Error('--external: REDIS_URL is not set');
const say = (line: string) => console.error(`load: ${line}`);

/** The test image, built from Debian's busybox-static and loaded when the engine lacks it. */
async function ensureImage(): Promise<void> {
  if (
    await docker
      .getImage(IMAGE)
      .inspect()
      .then(
        () => true,
        () => false,
      )
  )
    return;
  const { stdout } = await execa('bash', [join(REPO, 'scripts', 'build-image.sh')]);
  await execa('docker', ['load', '-i', stdout.trim()]);
}

/** How one run goes beyond its target and workers; absent fields: as `npm run load` always did. */
interface RunSettings extends Pick<LoadOptions, 'disturbance'> {
  /** What the disturbance does, for the log line. */
  disturbing?: string;
  /** Jobs a second; absent: every job at once. */
  rate?: number;
  /** Workers someone else runs: their holders are theirs. */
  workersStayUp?: boolean;
  engines?: Dockerode[];
}

/** A worker SIGKILLed at a quarter of the results, the others restarted one by one at half. */
const disrupting = (workers: Workers): RunSettings => ({
  disturbance: (progress) => disturb(workers, progress.finished, say),
  disturbing: 'a kill and a rolling restart',
});

async function once(target: Target, workers: Workers, settings: RunSettings = {}): Promise<LoadReport> {
  const engines = settings.engines ?? [docker];
  say(`${count} jobs on ${workers.describe}${settings.disturbing ? `, with ${settings.disturbing}` : ''}`);
  let report: LoadReport;
  try {
    report = await runLoad({
      target,
      workers,
      engines,
      image: IMAGE,
      count,
      mix,
      disturbance: settings.disturbance,
      intervalMs: settings.rate ? 1000 / settings.rate : 0,
      timeoutMs,
      say,
    });
  } catch (error) {
    await workers
      .close()
      .catch((closing: unknown) => say(`closing the workers failed too: ${String(closing)}`));
    throw error;
  }
  // A run's figures outlive a failed close (a long run is costly to repeat): printed first.
  await workers.close().catch((error: unknown) => {
    console.log(renderTable([report]));
    throw error;
  });
  // Only a killed worker's holders should be left: counted, then removed so the next run starts
  // clean. Workers someone else runs still use theirs: those are left alone.
  if (!settings.workersStayUp)
    for (const engine of engines)
      Object.assign(
        report.holdersLeft,
        await removeHolders(engine, await queueHolders(engine, target.queue)),
      );
  return report;
}

/** One run on `k` private engines (each a "host" with its own dockerd), a worker bound to each, one Redis. */
async function onEngines(k: number, stateDir: string): Promise<LoadReport> {
  const engines: ScratchEngine[] = [];
  const redis = await TestRedis.start();
  try {
    const { stdout: tarball } = await execa('bash', [join(REPO, 'scripts', 'build-image.sh')]);
    for (let i = 1; i <= k; i++) {
      const engine = await ScratchEngine.start({ liveRestore: false, index: i });
      engines.push(engine);
      await execa('docker', ['-H', `unix://${engine.socketPath}`, 'load', '-i', tarball.trim()]);
    }
    const target = {
      redis: redis.url,
      queue: `load-${Date.now().toString(36)}`,
      logDir: join(stateDir, `logs-${k}`),
    };
    const engineSockets = engines.map((engine) => engine.socketPath);
    const workers = await localWorkers(target, k, concurrency, stateDir, { engineSockets });
    return await once(target, workers, { engines: engines.map((engine) => engine.docker), rate });
  } finally {
    for (const engine of engines) await engine.close();
    await redis.close();
  }
}

async function main(): Promise<{ reports: LoadReport[]; sentinel?: string; failed?: boolean }> {
  await ensureImage();
  const stateDir = await mkdtemp(join(tmpdir(), 'stevedore-load-'));
  const reports: LoadReport[] = [];
  try {
    if (values.sentinel) {
      const options: SentinelRunOptions = {
        workers: replicas,
        concurrency,
        count,
        mix,
        rate: rate ?? SENTINEL_RATE,
        failovers,
        image: IMAGE,
        engine: docker,
        stateDir,
        timeoutMs,
        say,
      };
      const run = await sentinelRun(options);
      return {
        reports: [run.report],
        sentinel: renderSentinelRun(options, run),
        failed: sentinelRunFailed(run),
      };
    }
    if (externalRedis) {
      // Against workers someone else runs (the loadgen profile): nothing to kill or scale.
      const external: Workers = {
        describe: 'the running workers',
        replicas: async () => [],
        heal: async () => {},
        close: async () => {},
      };
      const target = { redis: externalRedis, queue: values.queue, logDir: '' };
      reports.push(await once(target, external, { workersStayUp: true, rate }));
      return { reports };
    }
    if (values.engines) {
      for (const k of values.engines.split(',').map((text) => positive('engines', text))) {
        reports.push(await onEngines(k, stateDir));
      }
      return { reports };
    }
    if (!values.compose && !values.scaling) {
      const redis = await TestRedis.start();
      try {
        const target = {
          redis: redis.url,
          queue: `load-${Date.now().toString(36)}`,
          logDir: join(stateDir, 'logs'),
        };
        const workers = await localWorkers(target, replicas, concurrency, stateDir);
        const disrupt = !values['no-disrupt'] && replicas > 1;
        reports.push(await once(target, workers, { ...(disrupt ? disrupting(workers) : {}), rate }));
      } finally {
        await redis.close();
      }
      return { reports };
    }
    const stack = new ComposeStack({
      STEVEDORE_ON_SHUTDOWN: 'detach',
      STEVEDORE_CONCURRENCY: String(concurrency),
    });
    await stack.prepare();
    try {
      say('bringing up the compose stack (a cold first run seeds and builds the images)');
      await stack.stack(['up', '-d', '--scale', 'worker=0'], COLD_UP_MS);
      const target = { redis: stack.redisUrl, queue: stack.queue, logDir: stack.logDir };
      if (values.compose) {
        const disrupt = !values['no-disrupt'] && replicas > 1;
        const workers = await composeWorkers(stack, docker, replicas);
        reports.push(await once(target, workers, { ...(disrupt ? disrupting(workers) : {}), rate }));
      }
      // Undisturbed, so the figures compare: N replicas against one process doing N× the work.
      for (const n of values.scaling ? SCALING_REPLICAS : []) {
        reports.push(await once(target, await composeWorkers(stack, docker, n), { rate }));
        reports.push(await once(target, await localWorkers(target, 1, n * concurrency, stateDir), { rate }));
      }
    } finally {
      await stack.close();
    }
    return { reports };
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
}

const { reports, sentinel, failed } = await main();
const table = renderTable(reports);
const text = sentinel ? `${sentinel}\n\n${table}` : table;
console.log(text);
if (!values['no-write'] && !externalRedis) {
  await writeBlock(
    sentinel ? SENTINEL_BLOCK : LOAD_BLOCK,
    `Written ${new Date().toISOString()} by \`npm run load -- ${process.argv.slice(2).join(' ')}\`.\n\n${text}`,
  );
}
// A submit refused with an error is no loss, but only a failover excuses one (the Sentinel run
// judges itself: a worker that took no job after a failover has stopped).
const bad =
  failed ??
  reports.some(
    (r) => r.lost.length + r.runTwice.length + r.wrong.length + r.leaked.length + r.told.length > 0,
  );
process.exit(bad ? 1 : 0);
