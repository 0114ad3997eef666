import { join } from 'node:path';
import { pino } from 'pino';
import { DEMO_IMAGE } from '../src/cli/demo.js';
import { DockerExecutor, openRuntime, type PodmanRuntime } from '../src/executors/index.js';
import { StevedoreClient } from '../src/jobs/client.js';
import { BENCH_LABEL, bareLoop } from './bare.js';
import { type BenchRow, fmt, median, spread } from './stats.js';
import { stevedoreBatch, WorkerProcess } from './stevedore.js';

/** Fewer rounds than Docker's figure: a Podman container costs ~3× a Docker one here. */
const ROUNDS = 5;
const CONCURRENCY = [1, 2];
const JOBS_PER_RUN: Record<number, number> = { 1: 8, 2: 12 };
const TRIVIAL = ['true'];

export const PODMAN_HOW = `Podman: trivial jobs through a stevedore worker with STEVEDORE_RUNTIME=podman against the same bare loop on Podman's API (one service, started by the bench), medians of ${ROUNDS} interleaved rounds, ratio as for throughput.`;

/**
 * Trivial-job throughput on Podman: Stevedore (a real worker process on the bench's podman
 * service) against bare.ts's loop over the same API, rounds interleaved. The service is the
 * bench's own, on a socket in `dir`, stopped at the end.
 */
export async function podmanRows(
  redisUrl: string,
  tarball: string,
  dir: string,
  log: (line: string) => void,
): Promise<{ rows: BenchRow[]; version: string }> {
  const socket = join(dir, 'podman.sock');
  const runtime = (await openRuntime('podman', {
    podman: { socket, searchPath: process.env.PATH, logger: pino({ level: 'silent' }) },
  })) as PodmanRuntime;
  const rows: BenchRow[] = [];
  try {
    const version = await runtime.version();
    const podman = runtime.docker;
    const probe = new DockerExecutor({ runtime });
    await probe.loadImage({ image: DEMO_IMAGE, tarballPath: tarball, pullPolicy: 'if-not-present' });
    await probe.close();
    await bareLoop(podman, DEMO_IMAGE, TRIVIAL, 3, 1); // warm: the first container mounts the image
    const env = { STEVEDORE_RUNTIME: 'podman', STEVEDORE_PODMAN_SOCKET: socket };
    for (const c of CONCURRENCY) {
      const jobs = JOBS_PER_RUN[c] as number;
      const worker = await WorkerProcess.start(redisUrl, c, join(dir, `podman-state-${c}`), env);
      const client = new StevedoreClient({ redis: redisUrl, queue: worker.queue });
      try {
        const spec = { image: DEMO_IMAGE, command: TRIVIAL };
        await stevedoreBatch(client, spec, c); // warm-up: its holders are made here
        const ours: number[] = [];
        const bare: number[] = [];
        for (let round = 0; round < ROUNDS; round++) {
          ours.push(jobs / ((await stevedoreBatch(client, spec, jobs)) / 1000));
          const t0 = performance.now();
          await bareLoop(podman, DEMO_IMAGE, TRIVIAL, jobs, c);
          bare.push(jobs / ((performance.now() - t0) / 1000));
        }
        log(
          `podman concurrency ${c}: stevedore ${ours.map((x) => fmt(x, 2))} bare ${bare.map((x) => fmt(x, 2))} jobs/s`,
        );
        rows.push({
          figure: `podman throughput, concurrency ${c} (jobs/s)`,
          stevedore: fmt(median(ours), 2),
          baseline: `bare dockerode on podman ${fmt(median(bare), 2)}`,
          ratio: spread(ours.map((x, i) => x / (bare[i] as number))),
          target: '≥ 1.0',
        });
      } finally {
        await client.close();
        await worker.stop();
      }
    }
    for (const c of await podman.listContainers({ all: true, filters: { label: [BENCH_LABEL] } })) {
      await podman.getContainer(c.Id).remove({ force: true });
    }
    return { rows, version };
  } finally {
    await runtime.close();
  }
}
