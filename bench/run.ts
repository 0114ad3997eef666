import { spawn } from 'node:child_process';
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { Redis } from 'ioredis';
import { bundledImageTarball, DEMO_IMAGE } from '../src/cli/demo.js';
import { DockerExecutor } from '../src/executors/docker/docker-executor.js';
import { StevedoreClient } from '../src/jobs/client.js';
import { coerceError } from '../src/jobs/errors.js';
import { IDLE_GC_DELAY_MS } from '../src/worker/idle-gc.js';
import { RedisServerProcess } from '../src/worker/redis-server.js';
import { BENCH_LABEL, bareLoop } from './bare.js';
import { GATEWAY_HOW, gatewayRows } from './gateway.js';
import { naiveRun } from './naive.js';
import { PODMAN_HOW, podmanRows } from './podman.js';
import { PullFigure, pullRows } from './pull.js';
import { measureRedisMemory, redisMemoryRows } from './redis-memory.js';
import { type BenchRow, fmt, median, percentile, spread } from './stats.js';
import { statusReadRows } from './status-read.js';
import { stevedoreBatch, stevedoreJob, stevedoreLatencies, WorkerProcess } from './stevedore.js';

/**
 * `npm run bench`: Stevedore against the bare runtime and the naive alternative, on this
 * machine, in one run (loopback only, bounded). Prints a table and writes BENCHMARKS.md.
 * `--only pull` (or `status`, or `gateway`) runs the image pull (or status read) figure alone and only prints it
 * (BENCHMARKS.md keeps the whole run's block); `--only podman` runs the Podman figure and writes its own block.
 */
const FIGURES_ALONE = ['pull', 'status', 'podman', 'gateway'] as const;
const REPEATS = 3;
/**
 * Output runs per side: the figure drifts within one bench run (the kernel's page-cache work
 * grows as written files pile up), so more pairs, in alternating order, each round's ratio
 * taken on its own.
 */
const OUTPUT_ROUNDS = 5;
/** Throughput is noisier than the rest (±15 % between runs here): more rounds, paired ratios. */
const THROUGHPUT_ROUNDS = 5;
const CONCURRENCY = [1, 2, 4];
const JOBS_PER_RUN: Record<number, number> = { 1: 12, 2: 20, 4: 32 };
const LATENCY_JOBS = 100;
const OUTPUT_BYTES = 500_000_000;
const TRIVIAL = ['true'];
/** Lines of `yes out` (4 bytes each) for the short-line output figure: a few seconds with `local`. */
const SHORT_LINES = 2_000_000;

const HOW = `Throughput: medians of ${THROUGHPUT_ROUNDS} interleaved rounds, ratio = median of the rounds' paired ratios (lowest–highest). Latency: ${LATENCY_JOBS} jobs, each paired with one bare container. Output: medians of ${OUTPUT_ROUNDS} paired runs in alternating order, ratio as for throughput (${REPEATS} with the none driver). Pull: 5 pairs in alternating order, each side from an engine without the image, ratio as for throughput. ${GATEWAY_HOW}`;

const rows: BenchRow[] = [];
const log = (line: string): void => console.error(`[bench] ${line}`);

/**
 * Counts the requests clients send to Redis (round trips, not the commands scripts run inside),
 * through MONITOR: script-internal commands are the lines marked "lua".
 */
async function countRoundTrips(url: string): Promise<{ stop: () => Promise<number> }> {
  const base = new Redis(url);
  const monitor = await base.monitor();
  let count = 0;
  monitor.on('monitor', (_time: string, _args: string[], source: string) => {
    if (!source.includes('lua')) count += 1;
  });
  return {
    stop: async () => {
      monitor.disconnect();
      await base.quit();
      return count;
    },
  };
}

/** `docker run ARGS > file`, the file opened by us and handed to the CLI as its stdout, as a shell would. */
async function dockerRunToFile(args: string[], file: string): Promise<void> {
  const out = await open(file, 'w');
  try {
    const child = spawn('docker', ['run', ...args], { stdio: ['ignore', out.fd, 'inherit'] });
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', resolve);
    });
    if (code !== 0) throw new Error(`docker run exited with ${code}`);
  } finally {
    await out.close();
  }
}

const RESULTS_START = '<!-- bench:start (written by npm run bench) -->';
const RESULTS_END = '<!-- bench:end -->';
const PODMAN_START = '<!-- podman:start (written by npm run bench -- --only podman) -->';
const PODMAN_END = '<!-- podman:end -->';

/** Replaces a results block of BENCHMARKS.md, keeping the hand-written notes around it. */
async function writeResults(block: string, open = RESULTS_START, close = RESULTS_END): Promise<void> {
  const path = join(import.meta.dirname, '..', 'BENCHMARKS.md');
  const current = await readFile(path, 'utf8').catch(() => `# Benchmarks\n\n${open}\n${close}\n`);
  const start = current.indexOf(open);
  const end = current.indexOf(close);
  const next =
    start === -1 || end === -1
      ? `${current}\n${open}\n${block}\n${close}\n`
      : `${current.slice(0, start + open.length)}\n${block}\n${current.slice(end)}`;
  await writeFile(path, next);
}

/**
 * Interrupted (Ctrl-C, a timeout): stop the workers (they write into the scratch dir) and the
 * pull figure (its registry and image), then `cleanUp` the rest rather than leave it behind.
 * `on`, not `once`: execa's exit hook re-raises the signal (and the process dies mid-cleanup)
 * when it finds no other listener left.
 */
function cleanUpOnInterrupt(dir: string, cleanUp: () => Promise<void>): void {
  let interrupted = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (interrupted) return;
      interrupted = true;
      log(`${signal}: stopping the workers and cleaning up`);
      Promise.all([...WorkerProcess.running].map((w) => w.stop()))
        .then(() => Promise.all([...PullFigure.running].map((p) => p.close())))
        .then(cleanUp)
        .then(() =>
          log('interrupted; workers, registry, Redis, containers, images and scratch files removed'),
        )
        .catch((error: unknown) => log(`cleanup failed: ${String(error)}; remove ${dir} yourself`))
        .finally(() => process.exit(130));
    });
  }
}

const machine = (dockerVersion: string): string =>
  `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${fmt(totalmem() / 2 ** 30, 0)} GiB, ${dockerVersion}, Node ${process.version}`;

const table = (): string =>
  [
    '| figure | Stevedore | baseline | ratio | target |',
    '|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.figure} | ${r.stevedore} | ${r.baseline} | ${r.ratio} | ${r.target} |`),
  ].join('\n');

/** One figure alone, for working on it: its own Redis and scratch dir; printed, not written. */
async function alone(figure: (typeof FIGURES_ALONE)[number]): Promise<void> {
  const docker = new Dockerode();
  const dir = await mkdtemp(join(tmpdir(), 'stevedore-bench-'));
  const redisServer = new RedisServerProcess({ dataDir: join(dir, 'redis') });
  const cleanUp = async (): Promise<void> => {
    await redisServer.stop();
    await rm(dir, { recursive: true, force: true });
  };
  cleanUpOnInterrupt(dir, cleanUp);
  try {
    await redisServer.start();
    if (figure === 'pull') rows.push(...(await pullRows(docker, redisServer.url, dir, log)));
    if (figure === 'status') rows.push(...(await statusReadRows(redisServer.url, log)));
    if (figure === 'gateway') rows.push(...(await gatewayRows(redisServer.url, dir, log)));
    if (figure === 'podman') {
      const podman = await podmanRows(redisServer.url, await bundledImageTarball(), dir, log);
      rows.push(...podman.rows);
      const when = new Date().toISOString().slice(0, 10);
      const block = `Machine: ${machine(podman.version)}, measured ${when}. ${PODMAN_HOW}\n\n${table()}`;
      await writeResults(block, PODMAN_START, PODMAN_END);
    }
  } finally {
    await cleanUp();
  }
  const dockerVersion = await new DockerExecutor({ docker }).runtime();
  console.log(`\nMachine: ${machine(dockerVersion)}\n\n${table()}\n`);
}

async function main(): Promise<void> {
  const onlyAt = process.argv.indexOf('--only');
  if (onlyAt !== -1) {
    const figure = FIGURES_ALONE.find((f) => f === process.argv[onlyAt + 1]);
    if (!figure) throw new Error(`--only takes one of: ${FIGURES_ALONE.join(', ')}`);
    return alone(figure);
  }
  const started = Date.now();
  const docker = new Dockerode();
  const dir = await mkdtemp(join(tmpdir(), 'stevedore-bench-'));
  const redisServer = new RedisServerProcess({ dataDir: join(dir, 'redis') });
  await redisServer.start();
  const admin = new Redis(redisServer.url);
  const tarball = await bundledImageTarball();
  const probe = new DockerExecutor({ docker });
  await probe.loadImage({ image: DEMO_IMAGE, tarballPath: tarball, pullPolicy: 'if-not-present' });
  const spec = { image: DEMO_IMAGE, command: TRIVIAL };
  const noInitSpec = { ...spec, init: false };
  const dockerVersion = await probe.runtime();
  /** Redis, the bare loops' containers and the scratch dir (up to ~2 GB of output files). */
  const cleanUp = async (): Promise<void> => {
    await redisServer.stop();
    for (const c of await docker.listContainers({ all: true, filters: { label: [BENCH_LABEL] } })) {
      await docker.getContainer(c.Id).remove({ force: true });
    }
    await rm(dir, { recursive: true, force: true });
  };
  cleanUpOnInterrupt(dir, async () => {
    admin.disconnect();
    await cleanUp();
  });

  try {
    // Warm the engine (first container start pays for the image's first mount).
    await bareLoop(docker, DEMO_IMAGE, TRIVIAL, 3, 1);

    for (const c of CONCURRENCY) {
      const jobs = JOBS_PER_RUN[c] as number;
      const worker = await WorkerProcess.start(redisServer.url, c, join(dir, `state-${c}`));
      const client = new StevedoreClient({ redis: redisServer.url, queue: worker.queue });
      // The same worker with a fresh network namespace per job, as the bare loop makes them.
      const freshWorker = await WorkerProcess.start(redisServer.url, c, join(dir, `state-fresh-${c}`), {
        STEVEDORE_NETNS: 'fresh',
      });
      const freshClient = new StevedoreClient({ redis: redisServer.url, queue: freshWorker.queue });
      // The old default log driver beside the new one (`local`), for the cost of keeping output.
      const noneWorker = await WorkerProcess.start(redisServer.url, c, join(dir, `state-none-${c}`), {
        STEVEDORE_LOG_DRIVER: 'none',
      });
      const noneClient = new StevedoreClient({ redis: redisServer.url, queue: noneWorker.queue });
      let freshStopped = false;
      const stopFresh = async (): Promise<void> => {
        if (freshStopped) return;
        freshStopped = true;
        await freshClient.close();
        await freshWorker.stop();
        await noneClient.close();
        await noneWorker.stop();
      };
      await new Promise((r) => setTimeout(r, 1_000)); // let start-up settle before reading RSS
      const startRss = (await worker.memory()).rss;
      try {
        await stevedoreBatch(client, spec, c); // warm-up
        await stevedoreBatch(freshClient, spec, c);
        await stevedoreBatch(noneClient, spec, c);
        // Rounds interleave the systems, so that the machine's drift hits them alike.
        const ours: number[] = [];
        const oursFresh: number[] = [];
        const bare: number[] = [];
        const naive: number[] = [];
        const oursNone: number[] = [];
        const oursNoInit: number[] = [];
        for (let round = 0; round < THROUGHPUT_ROUNDS; round++) {
          ours.push(jobs / ((await stevedoreBatch(client, spec, jobs)) / 1000));
          oursNone.push(jobs / ((await stevedoreBatch(noneClient, spec, jobs)) / 1000));
          oursNoInit.push(jobs / ((await stevedoreBatch(client, noInitSpec, jobs)) / 1000));
          oursFresh.push(jobs / ((await stevedoreBatch(freshClient, spec, jobs)) / 1000));
          const t0 = performance.now();
          await bareLoop(docker, DEMO_IMAGE, TRIVIAL, jobs, c);
          bare.push(jobs / ((performance.now() - t0) / 1000));
          naive.push(jobs / ((await naiveRun(redisServer.url, DEMO_IMAGE, TRIVIAL, jobs, c)) / 1000));
        }
        // Each round's ratio pairs the systems under the same machine conditions.
        const ratios = ours.map((x, i) => x / (bare[i] as number));
        const freshRatios = oursFresh.map((x, i) => x / (bare[i] as number));
        const naiveRatios = ours.map((x, i) => x / (naive[i] as number));
        log(
          `concurrency ${c}: stevedore ${ours.map((x) => fmt(x, 2))} log-driver-none ${oursNone.map((x) => fmt(x, 2))} no-init ${oursNoInit.map((x) => fmt(x, 2))} fresh-netns ${oursFresh.map((x) => fmt(x, 2))} bare ${bare.map((x) => fmt(x, 2))} naive ${naive.map((x) => fmt(x, 2))} jobs/s`,
        );
        rows.push({
          figure: `throughput, concurrency ${c} (jobs/s)`,
          stevedore: fmt(median(ours), 2),
          baseline: `bare dockerode ${fmt(median(bare), 2)}`,
          ratio: spread(ratios),
          target: '≥ 1.0 (never < 0.95)',
        });
        rows.push({
          figure: `… defaults (log driver local, init) vs STEVEDORE_LOG_DRIVER=none, concurrency ${c}`,
          stevedore: fmt(median(ours), 2),
          baseline: `none ${fmt(median(oursNone), 2)}`,
          ratio: spread(ours.map((x, i) => x / (oursNone[i] as number))),
          target: '',
        });
        rows.push({
          figure: `… defaults (init) vs spec init: false, concurrency ${c}`,
          stevedore: fmt(median(ours), 2),
          baseline: `init off ${fmt(median(oursNoInit), 2)}`,
          ratio: spread(ours.map((x, i) => x / (oursNoInit[i] as number))),
          target: '',
        });
        rows.push({
          figure: `… with STEVEDORE_NETNS=fresh (a new namespace per job, as the bare loop), concurrency ${c}`,
          stevedore: fmt(median(oursFresh), 2),
          baseline: `bare dockerode ${fmt(median(bare), 2)}`,
          ratio: spread(freshRatios),
          target: '',
        });
        rows.push({
          figure: `vs naive BullMQ + docker run, concurrency ${c} (jobs/s)`,
          stevedore: fmt(median(ours), 2),
          baseline: `naive ${fmt(median(naive), 2)}`,
          ratio: spread(naiveRatios),
          target: 'clearly > 1',
        });

        // Gone before the round trips are counted: its idle polling is not the measured worker's.
        await stopFresh();

        if (c === 1) {
          const counter = await countRoundTrips(redisServer.url);
          await stevedoreLatencies(client, spec, LATENCY_JOBS);
          const roundTrips = await counter.stop();
          // Paired: each Stevedore job next to one bare container, so drift cancels out.
          const added: number[] = [];
          const own: number[] = [];
          const bareTimes: number[] = [];
          for (let i = 0; i < LATENCY_JOBS; i++) {
            const ours = await stevedoreJob(client, spec);
            const [bareMs = 0] = await bareLoop(docker, DEMO_IMAGE, TRIVIAL, 1, 1);
            added.push(ours.ms - bareMs);
            own.push(ours.ms - ours.engineMs);
            bareTimes.push(bareMs);
          }
          const bareMedian = median(bareTimes);
          rows.push({
            figure: 'added latency p50 (ms, submit → result minus bare container time)',
            stevedore: fmt(percentile(added, 50)),
            baseline: `bare container ${fmt(bareMedian)} ms`,
            ratio: '',
            target: '≤ 15',
          });
          rows.push({
            figure: 'added latency p99 (ms)',
            stevedore: fmt(percentile(added, 99)),
            baseline: '',
            ratio: '',
            target: '≤ 50',
          });
          rows.push({
            figure:
              "Stevedore's own time per job, p50 / p99 (ms, submit → result minus the worker's engine calls)",
            stevedore: `${fmt(percentile(own, 50))} / ${fmt(percentile(own, 99))}`,
            baseline: '',
            ratio: '',
            target: '',
          });
          rows.push({
            figure: 'Redis round trips per job (client + worker, incl. idle polling)',
            stevedore: fmt(roundTrips / LATENCY_JOBS, 1),
            baseline: '',
            ratio: '',
            target: '',
          });
          // Idle: after the worker's idle collection (worker/idle-gc.ts) had its chance.
          await new Promise((r) => setTimeout(r, IDLE_GC_DELAY_MS + 1_000));
          const idle = await worker.memory();
          rows.push({
            figure: 'idle worker RSS (MB): at start / after the jobs above',
            stevedore: `${fmt(startRss / 1e6)} / ${fmt(idle.rss / 1e6)}`,
            baseline: '',
            ratio: '',
            target: '≤ 80',
          });

          // Output throughput: 500 MB of stdout into the log file.
          const outSpec = { image: DEMO_IMAGE, command: ['head', '-c', String(OUTPUT_BYTES), '/dev/zero'] };
          const linesSpec = { image: DEMO_IMAGE, command: ['sh', '-c', `yes out | head -n ${SHORT_LINES}`] };
          const rssBefore = (await worker.memory()).rss;
          let bareRuns = 0;
          const oursOut: number[] = [];
          const bareOut: number[] = [];
          let peak = 0;
          for (let round = 0; round < OUTPUT_ROUNDS; round++) {
            if (round % 2 === 1) bareOut.push(await bareOutput('local'));
            oursOut.push(OUTPUT_BYTES / 1e6 / ((await stevedoreBatch(client, outSpec, 1)) / 1000));
            peak = Math.max(peak, (await worker.memory()).peak);
            if (round % 2 === 0) bareOut.push(await bareOutput('local'));
          }
          log(`output: stevedore ${oursOut.map((x) => fmt(x))} cli ${bareOut.map((x) => fmt(x))} MB/s`);
          async function bareOutput(driver: string): Promise<number> {
            // A new file per run, as a worker writes one per job: overwriting one file would let
            // the kernel drop the last run's dirty pages instead of writing them back.
            const file = join(dir, `bare-out-${++bareRuns}`);
            const t0 = performance.now();
            await dockerRunToFile(
              [
                '--rm',
                '--log-driver',
                driver,
                '--network',
                'none',
                '-a',
                'stdout',
                '--label',
                `${BENCH_LABEL}=out`,
                DEMO_IMAGE,
                ...outSpec.command,
              ],
              file,
            );
            const elapsed = performance.now() - t0;
            if ((await stat(file)).size !== OUTPUT_BYTES) throw new Error('bare output incomplete');
            return OUTPUT_BYTES / 1e6 / (elapsed / 1000);
          }
          rows.push({
            figure: 'output throughput, 500 MB stdout → file, defaults (log driver local) (MB/s)',
            stevedore: fmt(median(oursOut)),
            baseline: `docker run --log-driver local -a stdout > file ${fmt(median(bareOut))}`,
            ratio: spread(oursOut.map((x, i) => x / (bareOut[i] as number))),
            target: '≥ 1.0',
          });
          rows.push({
            figure: 'worker RSS growth during 500 MB output (MB)',
            stevedore: fmt(Math.max(0, peak - rssBefore) / 1e6),
            baseline: '',
            ratio: '',
            target: '≤ 100',
          });

          // The same with the `none` log driver, the old default: faster, but an adopting worker
          // loses what nobody was attached for.
          const noneOutWorker = await WorkerProcess.start(redisServer.url, 1, join(dir, 'state-none'), {
            STEVEDORE_LOG_DRIVER: 'none',
          });
          const noneOutClient = new StevedoreClient({ redis: redisServer.url, queue: noneOutWorker.queue });
          const oursNoneOut: number[] = [];
          const bareNoneOut: number[] = [];
          const linesLocal: number[] = [];
          const linesNone: number[] = [];
          try {
            for (let round = 0; round < REPEATS; round++) {
              oursNoneOut.push(
                OUTPUT_BYTES / 1e6 / ((await stevedoreBatch(noneOutClient, outSpec, 1)) / 1000),
              );
              bareNoneOut.push(await bareOutput('none'));
              // Short lines: the engine's local driver stores each line as its own message.
              linesLocal.push(SHORT_LINES / ((await stevedoreBatch(client, linesSpec, 1)) / 1000));
              linesNone.push(SHORT_LINES / ((await stevedoreBatch(noneOutClient, linesSpec, 1)) / 1000));
            }
          } finally {
            await noneOutClient.close();
            await noneOutWorker.stop();
          }
          rows.push({
            figure: 'output throughput with STEVEDORE_LOG_DRIVER=none (MB/s)',
            stevedore: fmt(median(oursNoneOut)),
            baseline: `docker run --log-driver none -a stdout > file ${fmt(median(bareNoneOut))}`,
            ratio: spread(oursNoneOut.map((x, i) => x / (bareNoneOut[i] as number))),
            target: '',
          });
          rows.push({
            figure: `output of ${SHORT_LINES / 1e6} M 4-byte lines, defaults (local) vs none (lines/s)`,
            stevedore: fmt(median(linesLocal), 0),
            baseline: `none ${fmt(median(linesNone), 0)}`,
            ratio: spread(linesLocal.map((x, i) => x / (linesNone[i] as number))),
            target: '',
          });
          rows.push({
            figure: 'output throughput, defaults (local) vs STEVEDORE_LOG_DRIVER=none (MB/s)',
            stevedore: fmt(median(oursOut)),
            baseline: `none ${fmt(median(oursNoneOut))}`,
            ratio: fmt(median(oursOut) / median(oursNoneOut), 2),
            target: '',
          });
        }
      } finally {
        await client.close();
        await worker.stop();
        await stopFresh();
      }
    }
    rows.push(...(await pullRows(docker, redisServer.url, dir, log)));
    rows.push(...(await statusReadRows(redisServer.url, log)));
    rows.push(...(await gatewayRows(redisServer.url, dir, log)));
  } finally {
    await admin.quit();
    await cleanUp();
  }

  log('Redis memory per finished job');
  rows.push(...redisMemoryRows(await measureRedisMemory()));

  console.log(
    `\nMachine: ${machine(dockerVersion)}\n${HOW} ${fmt((Date.now() - started) / 1000, 0)} s in all.\n\n${table()}\n`,
  );
  await writeResults(
    `Machine: ${machine(dockerVersion)}, measured ${new Date().toISOString().slice(0, 10)}. ${HOW}\n\n${table()}`,
  );
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`bench failed: ${coerceError(error).stack ?? String(error)}`);
    process.exit(1);
  },
);
