import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import { DEMO_IMAGE } from '../src/cli/demo.js';
import { StevedoreClient } from '../src/jobs/client.js';
import { logDirOf } from '../src/jobs/names.js';
import { TestRegistry } from '../test/helpers/registry.js';
import { buildTestImage, pushImage, removeImage } from '../test/helpers/registry-images.js';
import { type BenchRow, fmt, median, spread } from './stats.js';
import { WorkerProcess } from './stevedore.js';

/** ~100 MB of random data: incompressible, so the registry serves as many bytes as the layers hold. */
const IMAGE_BYTES = 100_000_000;
/** Several layers, as real images have: the engine downloads 3 at once (its max-concurrent-downloads). */
const IMAGE_LAYERS = 4;
const PAIRS = 5;
const REPO = 'bench/pull';
/** A pull of ~100 MB over loopback takes seconds; this only bounds a pull that hangs. */
const PULL_TIMEOUT_MS = 300_000;
/** The worker removes a finished job's container within a second or so; this bounds the wait. */
const CONTAINER_GONE_MS = 30_000;

/** One Stevedore job's pull: the result's loading-image phase, the events.log `pull` line, the job's whole time. */
interface JobPull {
  phaseMs: number;
  eventsMs: number;
  eventsBytes: number;
  jobMs: number;
  /** Every phase of the result, for where the rest of the job's time went. */
  phases: Record<string, number>;
}

/**
 * The pull figure: a ~100 MB image in a local registry, pulled by `docker pull` and by a
 * Stevedore job in turn, each from an engine without the image. `running` holds the figures
 * not yet closed, for an interrupted bench to close (registry stopped, image removed).
 */
export class PullFigure {
  static readonly running = new Set<PullFigure>();
  private cli: ChildProcess | null = null;
  private closed = false;

  private constructor(
    private readonly docker: Dockerode,
    private readonly registry: TestRegistry,
    private readonly ref: string,
    private readonly imageId: string,
    /** Diff ids of the layers the pull must download (all but the base image's). */
    private readonly ownLayers: Set<string>,
    /** Bytes of the blobs a pull downloads (the registry's sizes: compressed layers and config). */
    readonly downloadBytes: number,
    private readonly log: (line: string) => void,
  ) {}

  /** Builds the image, pushes it to a fresh registry and removes it locally. */
  static async prepare(docker: Dockerode, log: (line: string) => void): Promise<PullFigure> {
    const registry = await TestRegistry.start();
    const ref = registry.ref(REPO, 'v1');
    let imageId: string | undefined;
    try {
      const local = `stevedore-bench/pull:${Date.now()}`;
      log(`pull: building a ${IMAGE_BYTES / 1e6} MB image in ${IMAGE_LAYERS} layers and pushing it`);
      imageId = await buildTestImage(docker, local, {
        variant: `bench-${Date.now()}`,
        randomBytes: IMAGE_BYTES,
        layers: IMAGE_LAYERS,
      });
      await pushImage(docker, local, ref);
      const base = new Set((await docker.getImage(DEMO_IMAGE).inspect()).RootFS.Layers ?? []);
      const layers = (await docker.getImage(imageId).inspect()).RootFS.Layers ?? [];
      const own = new Set(layers.filter((l) => !base.has(l)));
      const manifest = await manifestOf(registry, 'v1');
      // Layers come in the manifest in RootFS order; the base's are on the engine ("Already exists").
      const skipped = layers.length - own.size;
      const bytes = manifest.config.size + manifest.layers.slice(skipped).reduce((sum, l) => sum + l.size, 0);
      const figure = new PullFigure(docker, registry, ref, imageId, own, bytes, log);
      PullFigure.running.add(figure);
      return figure;
    } catch (error) {
      if (imageId) await removeImage(docker, imageId).catch((e) => log(`pull: cleanup failed: ${String(e)}`));
      await registry.close();
      throw error;
    }
  }

  /** The pairs, alternating which side goes first, and the figure's rows. */
  async measure(redisUrl: string, dir: string): Promise<BenchRow[]> {
    const logRoot = join(dir, 'pull-logs');
    const worker = await WorkerProcess.start(redisUrl, 1, join(dir, 'state-pull'), {
      STEVEDORE_LOG_DIR: logRoot,
    });
    const client = new StevedoreClient({ redis: redisUrl, queue: worker.queue });
    const cli: number[] = [];
    const jobs: JobPull[] = [];
    try {
      // The worker's first job pays for its network namespace holder: not the pull's to carry.
      const warm = await client.submit({ image: DEMO_IMAGE, command: ['true'], imagePullPolicy: 'never' });
      if ((await client.waitForResult(warm.id, { timeoutMs: 60_000 })).exitCode !== 0) {
        throw new Error('pull: the warm-up job failed');
      }
      for (let pair = 0; pair < PAIRS; pair++) {
        if (pair % 2 === 1) cli.push(await this.fresh(() => this.cliPull()));
        jobs.push(await this.fresh(() => this.jobPull(client, worker.queue, logRoot)));
        if (pair % 2 === 0) cli.push(await this.fresh(() => this.cliPull()));
        const job = jobs[pair] as JobPull;
        this.log(
          `pull ${pair + 1}: docker pull ${fmt(cli[pair] as number, 0)} ms, job loading-image ${job.phaseMs} ms (events.log ${job.eventsMs} ms, ${job.eventsBytes} B of ${this.downloadBytes}), job ${fmt(job.jobMs, 0)} ms ${JSON.stringify(job.phases)}`,
        );
      }
    } finally {
      await client.close();
      await worker.stop();
    }
    const mb = this.downloadBytes / 1e6;
    const ratios = cli.map((ms, i) => ms / (jobs[i] as JobPull).phaseMs);
    const ourRate = jobs.map((j) => mb / (j.phaseMs / 1000));
    const cliRate = cli.map((ms) => mb / (ms / 1000));
    return [
      {
        figure: `image pull, ${fmt(mb, 0)} MB in ${IMAGE_LAYERS} layers from a local registry (ms; docker pull time / job's loading-image)`,
        stevedore: fmt(median(jobs.map((j) => j.phaseMs)), 0),
        baseline: `docker pull ${fmt(median(cli), 0)}`,
        ratio: spread(ratios),
        target: '≥ 0.95',
      },
      {
        figure: "… the pull's share of the job's time (submit → result, %)",
        stevedore: fmt(median(jobs.map((j) => (100 * j.phaseMs) / j.jobMs))),
        baseline: `job ${fmt(median(jobs.map((j) => j.jobMs)), 0)} ms`,
        ratio: '',
        target: '',
      },
      {
        figure: '… pull throughput (MB/s)',
        stevedore: fmt(median(ourRate)),
        baseline: `docker pull ${fmt(median(cliRate))}`,
        ratio: '',
        target: '',
      },
    ];
  }

  /** Kills a `docker pull` under way, stops the registry and removes the image; safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    PullFigure.running.delete(this);
    this.cli?.kill('SIGKILL');
    try {
      await removeImage(this.docker, this.imageId);
    } finally {
      await this.registry.close();
    }
  }

  /** Runs `pull` from an engine without the image, and checks that it downloaded every layer. */
  private async fresh<T>(pull: () => Promise<T>): Promise<T> {
    await this.removeAll();
    const before = (await this.registry.fetched(REPO)).blobs.length;
    const outcome = await pull();
    const blobs = (await this.registry.fetched(REPO)).blobs.length - before;
    // One GET per own layer and one for the config: fewer means the engine still had some.
    if (blobs !== this.ownLayers.size + 1) {
      throw new Error(`pull fetched ${blobs} blobs, not ${this.ownLayers.size + 1}: a layer was left`);
    }
    const id = (await this.docker.getImage(this.ref).inspect()).Id;
    if (id !== this.imageId) throw new Error(`pulled ${this.ref} is ${id}, not the pushed ${this.imageId}`);
    return outcome;
  }

  /** Removes the image by id (every tag) and checks with inspect that no image or container keeps a layer of it. */
  private async removeAll(): Promise<void> {
    // The worker removes a job's container after it published the result; a forced image
    // removal under a container would keep the layers.
    for (const until = Date.now() + CONTAINER_GONE_MS; ; ) {
      const holders = (await this.docker.listContainers({ all: true })).filter(
        (c) => c.ImageID === this.imageId,
      );
      if (holders.length === 0 || Date.now() > until) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await removeImage(this.docker, this.imageId);
    const keepers: string[] = [];
    for (const image of await this.docker.listImages({ all: true })) {
      const info = await this.docker
        .getImage(image.Id)
        .inspect()
        .catch(() => null);
      if (info?.RootFS.Layers?.some((l) => this.ownLayers.has(l))) keepers.push(`image ${image.Id}`);
    }
    for (const c of await this.docker.listContainers({ all: true })) {
      if (c.ImageID === this.imageId) keepers.push(`container ${c.Id}`);
    }
    if (keepers.length > 0) throw new Error(`layers of ${this.ref} still held by ${keepers.join(', ')}`);
  }

  /** `docker pull REF` with the CLI, timed from spawn to exit. */
  private async cliPull(): Promise<number> {
    const t0 = performance.now();
    const child = spawn('docker', ['pull', this.ref], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.cli = child;
    let said = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      said += chunk.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), PULL_TIMEOUT_MS);
    try {
      const code = await new Promise<number | null>((resolve, reject) => {
        child.once('error', reject);
        child.once('exit', resolve);
      });
      if (code !== 0) throw new Error(`docker pull ${this.ref} exited with ${code}: ${said.trim()}`);
      return performance.now() - t0;
    } finally {
      clearTimeout(timer);
      this.cli = null;
    }
  }

  /** One job that pulls the image (`always`) and runs `true`; submit → result. */
  private async jobPull(client: StevedoreClient, queue: string, logRoot: string): Promise<JobPull> {
    const t0 = performance.now();
    const { id } = await client.submit(
      { image: this.ref, command: ['true'], imagePullPolicy: 'always' },
      { attempts: 1 },
    );
    const result = await client.waitForResult(id, { timeoutMs: PULL_TIMEOUT_MS });
    const jobMs = performance.now() - t0;
    if (result.exitCode !== 0 || result.imageId !== this.imageId) {
      throw new Error(
        `pull job ${id} did not run ${this.imageId}: ${JSON.stringify(result.error ?? result)}`,
      );
    }
    const events = await readFile(
      join(logDirOf(logRoot, { queue, jobId: id, attempt: 1 }), 'events.log'),
      'utf8',
    );
    const line = events.split('\n').find((l) => / pull \{/.test(l));
    if (!line) throw new Error(`pull job ${id}: events.log has no pull line`);
    const pull = JSON.parse(line.slice(line.indexOf('{'))) as { durationMs: number; bytes: number };
    return {
      phaseMs: result.phases['loading-image'] ?? Number.NaN,
      eventsMs: pull.durationMs,
      eventsBytes: pull.bytes,
      jobMs,
      phases: result.phases,
    };
  }
}

/** The registry's manifest of `tag` (schema 2): the blob sizes a pull downloads. */
async function manifestOf(
  registry: TestRegistry,
  tag: string,
): Promise<{ config: { size: number }; layers: { size: number }[] }> {
  const response = await fetch(`http://${registry.host}/v2/${REPO}/manifests/${tag}`, {
    headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' },
  });
  if (!response.ok) throw new Error(`manifest of ${REPO}:${tag}: ${response.status}`);
  return (await response.json()) as { config: { size: number }; layers: { size: number }[] };
}

/** The figure's rows: prepares, measures and closes, also when measuring fails. */
export async function pullRows(
  docker: Dockerode,
  redisUrl: string,
  dir: string,
  log: (line: string) => void,
): Promise<BenchRow[]> {
  const figure = await PullFigure.prepare(docker, log);
  try {
    return await figure.measure(redisUrl, dir);
  } finally {
    await figure.close();
  }
}
