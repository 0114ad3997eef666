import { spawn } from 'node:child_process';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { execa } from 'execa';
import { DEMO_IMAGE } from '../src/cli/demo.js';
import { StevedoreClient } from '../src/jobs/client.js';
import { type BenchRow, fmt, median, percentile, spread } from './stats.js';
import { WorkerProcess } from './stevedore.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
/** `stevedore exec` runs, each paired with one `docker exec` of the same command. */
const EXEC_RUNS = 20;
const DOWNLOAD_BYTES = 200 * 1024 * 1024;
const DOWNLOAD_ROUNDS = 5;
const SERVER_PORT = 8080;

export const GATEWAY_HOW = `Gateway: ${EXEC_RUNS} \`stevedore exec <id> -- echo\` runs from process start to the first byte of output, each paired with \`docker exec\` of the same command; forwarding: ${DOWNLOAD_ROUNDS} downloads of ${DOWNLOAD_BYTES / 2 ** 20} MiB from busybox httpd in the job, through \`stevedore port-forward\` and directly to the container's address, in alternating order.`;

/** A free loopback port (the worker's gateway needs a fixed one to advertise). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no free port');
  return address.port;
}

/** Milliseconds from spawning `command` to the first byte on its stdout; the run must exit 0. */
function toFirstByte(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let first: number | undefined;
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout.on('data', () => {
      first ??= performance.now() - t0;
    });
    child.stdout.on('error', reject);
    child.once('error', reject);
    child.once('close', (code) =>
      code === 0 && first !== undefined
        ? resolve(first)
        : reject(new Error(`${command} ${args.join(' ')} exited ${code}, first byte ${first ?? 'none'}`)),
    );
  });
}

/** Downloads a URL; returns MiB/s. */
function download(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let bytes = 0;
    get(url, (response) => {
      response.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      response.on('end', () => {
        if (bytes !== DOWNLOAD_BYTES) reject(new Error(`downloaded ${bytes} of ${DOWNLOAD_BYTES} bytes`));
        else resolve(bytes / 2 ** 20 / ((performance.now() - t0) / 1000));
      });
      response.on('error', reject);
    }).on('error', reject);
  });
}

/**
 * The gateway's figures on a real worker (STEVEDORE_GATEWAY on loopback): time to the first byte
 * of `stevedore exec` against `docker exec`, and port-forward throughput against a direct
 * connection to the same server in the job.
 */
export async function gatewayRows(
  redisUrl: string,
  dir: string,
  log: (line: string) => void,
): Promise<BenchRow[]> {
  const port = await freePort();
  const worker = await WorkerProcess.start(redisUrl, 1, join(dir, 'state-gateway'), {
    STEVEDORE_GATEWAY: `127.0.0.1:${port}`,
  });
  const client = new StevedoreClient({ redis: redisUrl, queue: worker.queue });
  const docker = new Dockerode();
  const env = { ...process.env, REDIS_URL: redisUrl, STEVEDORE_QUEUE: worker.queue };
  let jobId: string | undefined;
  let forward: ReturnType<typeof execa> | undefined;
  try {
    ({ id: jobId } = await client.submit(
      {
        image: DEMO_IMAGE,
        network: { enabled: true },
        command: [
          'sh',
          '-c',
          `mkdir -p /tmp/www && head -c ${DOWNLOAD_BYTES} /dev/zero > /tmp/www/big && exec httpd -f -p ${SERVER_PORT} -h /tmp/www`,
        ],
      },
      { attempts: 1 },
    ));
    const id = jobId;
    const containerId = await runningContainer(client, id);
    // The server is up once a request through the gateway answers.
    const networks = (await docker.getContainer(containerId).inspect()).NetworkSettings.Networks;
    const ip = Object.values(networks).find((n) => n.IPAddress)?.IPAddress;
    if (!ip) throw new Error(`bench: job ${id}'s container has no address`);
    await until(
      async () =>
        (await execa(CLI, ['exec', id, '--', 'test', '-s', '/tmp/www/big'], { env, reject: false }))
          .exitCode === 0,
    );

    const ours: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < EXEC_RUNS; i++) {
      ours.push(await toFirstByte(CLI, ['exec', id, '--', 'echo', 'hi'], env));
      bare.push(await toFirstByte('docker', ['exec', containerId, 'echo', 'hi'], env));
    }
    log(
      `exec first byte: stevedore ${ours.map((x) => fmt(x, 0))} docker exec ${bare.map((x) => fmt(x, 0))} ms`,
    );

    forward = execa(CLI, ['port-forward', id, `:${SERVER_PORT}`], { env, reject: false, buffer: false });
    const local = await new Promise<number>((resolve, reject) => {
      forward?.stdout?.on('data', (chunk: Buffer) => {
        const match = /127\.0\.0\.1:(\d+)/.exec(chunk.toString());
        if (match) resolve(Number(match[1]));
      });
      void forward?.then(() => reject(new Error('port-forward ended before it listened')));
    });
    const forwarded: number[] = [];
    const direct: number[] = [];
    for (let round = 0; round < DOWNLOAD_ROUNDS; round++) {
      const viaGateway = () => download(`http://127.0.0.1:${local}/big`);
      const straight = () => download(`http://${ip}:${SERVER_PORT}/big`);
      if (round % 2 === 0) {
        forwarded.push(await viaGateway());
        direct.push(await straight());
      } else {
        direct.push(await straight());
        forwarded.push(await viaGateway());
      }
    }
    log(`forward MiB/s: gateway ${forwarded.map((x) => fmt(x, 0))} direct ${direct.map((x) => fmt(x, 0))}`);
    return [
      {
        figure: '`stevedore exec` to the first byte of output, p50 / p90 (ms, a new CLI process each)',
        stevedore: `${fmt(median(ours), 0)} / ${fmt(percentile(ours, 90), 0)}`,
        baseline: `docker exec ${fmt(median(bare), 0)} / ${fmt(percentile(bare, 90), 0)}`,
        ratio: spread(ours.map((x, i) => x / (bare[i] as number))),
        target: '',
      },
      {
        figure: 'port-forward throughput (MiB/s, one HTTP download from the job)',
        stevedore: fmt(median(forwarded), 0),
        baseline: `direct to the container ${fmt(median(direct), 0)}`,
        ratio: spread(forwarded.map((x, i) => x / (direct[i] as number))),
        target: '',
      },
    ];
  } finally {
    forward?.kill('SIGTERM');
    await forward;
    if (jobId) await client.cancel(jobId).catch(() => undefined);
    await client.close();
    await worker.stop();
  }
}

/** The job's container id once it runs (its gateway is registered right after). */
async function runningContainer(client: StevedoreClient, id: string): Promise<string> {
  let containerId: string | undefined;
  await until(async () => {
    const progress = await client.getProgress(id);
    containerId = progress?.phase === 'running' ? progress.containerId : undefined;
    return containerId !== undefined;
  });
  return containerId as string;
}

async function until(probe: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error('bench: condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}
