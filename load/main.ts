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
import { queueHolders, removeHolders } from './engine.js';
import { DEFAULT_MIX, parseMix } from './mix.js';
import { type LoadReport, renderTable, writeLoadBlock } from './report.js';
import { runLoad } from './run-load.js';

/**
 * `npm run load -- [--jobs N] [--mix trivial=10,output=2,…] [--replicas N] [--compose]
 * [--scaling] [--engines 1,2,3] [--no-disrupt] [--no-write] [--redis URL | --external] [--queue Q]`: the load
 * test of issue 16, loopback only and bounded by --timeout. README "Load test". `--engines` runs once per
 * count K: K private dockerds (the many-hosts rig's "hosts"), a worker process bound to each, one Redis.
 */
const IMAGE = 'stevedore-test/busybox:1';
const REPO = join(import.meta.dirname, '..');
/** Per replica, as in the compose stack's test settings. */
const DEFAULT_CONCURRENCY = 4;
/** The scaling runs: replica counts, each against one process with the same total concurrency. */
const SCALING_REPLICAS = [1, 2, 4];

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '300' },
    mix: { type: 'string' },
    replicas: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: String(DEFAULT_CONCURRENCY) },
    compose: { type: 'boolean', default: false },
    scaling: { type: 'boolean', default: false },
    engines: { type: 'string' },
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

async function once(
  target: Target,
  workers: Workers,
  disrupt: boolean,
  workersStayUp = false,
  engines: Dockerode[] = [docker],
): Promise<LoadReport> {
  say(`${count} jobs on ${workers.describe}${disrupt ? ', with a kill and a rolling restart' : ''}`);
  let report: LoadReport;
  try {
    report = await runLoad({ target, workers, engines, image: IMAGE, count, mix, disrupt, timeoutMs, say });
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
  if (!workersStayUp)
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
      redisUrl: redis.url,
      queue: `load-${Date.now().toString(36)}`,
      logDir: join(stateDir, `logs-${k}`),
    };
    const sockets = engines.map((engine) => engine.socketPath);
    const workers = await localWorkers(target, k, concurrency, stateDir, sockets);
    return await once(
      target,
      workers,
      false,
      false,
      engines.map((engine) => engine.docker),
    );
  } finally {
    for (const engine of engines) await engine.close();
    await redis.close();
  }
}

async function main(): Promise<LoadReport[]> {
  await ensureImage();
  const stateDir = await mkdtemp(join(tmpdir(), 'stevedore-load-'));
  const reports: LoadReport[] = [];
  try {
    if (externalRedis) {
      // Against workers someone else runs (the loadgen profile): nothing to kill or scale.
      const external: Workers = {
        describe: 'the running workers',
        replicas: async () => [],
        heal: async () => {},
        close: async () => {},
      };
      reports.push(
        await once({ redisUrl: externalRedis, queue: values.queue, logDir: '' }, external, false, true),
      );
      return reports;
    }
    if (values.engines) {
      for (const k of values.engines.split(',').map((text) => positive('engines', text))) {
        reports.push(await onEngines(k, stateDir));
      }
      return reports;
    }
    if (!values.compose && !values.scaling) {
      const redis = await TestRedis.start();
      try {
        const target = {
          redisUrl: redis.url,
          queue: `load-${Date.now().toString(36)}`,
          logDir: join(stateDir, 'logs'),
        };
        const workers = await localWorkers(target, replicas, concurrency, stateDir);
        reports.push(await once(target, workers, !values['no-disrupt'] && replicas > 1));
      } finally {
        await redis.close();
      }
      return reports;
    }
    const stack = new ComposeStack({
      STEVEDORE_ON_SHUTDOWN: 'detach',
      STEVEDORE_CONCURRENCY: String(concurrency),
    });
    await stack.prepare();
    try {
      say('bringing up the compose stack (a cold first run seeds and builds the images)');
      await stack.stack(['up', '-d', '--scale', 'worker=0'], COLD_UP_MS);
      const target = { redisUrl: stack.redisUrl, queue: stack.queue, logDir: stack.logDir };
      if (values.compose) {
        const disrupt = !values['no-disrupt'] && replicas > 1;
        reports.push(await once(target, await composeWorkers(stack, docker, replicas), disrupt));
      }
      // Undisturbed, so the figures compare: N replicas against one process doing N× the work.
      for (const n of values.scaling ? SCALING_REPLICAS : []) {
        reports.push(await once(target, await composeWorkers(stack, docker, n), false));
        reports.push(await once(target, await localWorkers(target, 1, n * concurrency, stateDir), false));
      }
    } finally {
      await stack.close();
    }
    return reports;
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
}

const reports = await main();
const table = renderTable(reports);
console.log(table);
if (!values['no-write'] && !externalRedis) {
  await writeLoadBlock(
    `Written ${new Date().toISOString()} by \`npm run load -- ${process.argv.slice(2).join(' ')}\`.\n\n${table}`,
  );
}
const bad = reports.some((r) => r.lost.length + r.runTwice.length + r.wrong.length + r.leaked.length > 0);
process.exit(bad ? 1 : 0);
