/**
 * A worker's gateway half, as a process of its own, for the gateway's integration tests: it runs one
 * job's container on a real runtime, serves startGatewayServer for it on loopback, and registers the
 * job's gateway in Redis as a worker does. It prints one JSON line ({ port, containerId }) once ready;
 * SIGTERM ends it cleanly (container removed, entry deleted). A SIGKILL leaves the container for the
 * test to remove (by the id printed). Run: node --import tsx gateway-host.ts '<HostConfig JSON>'.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { createExecutor, openRuntime, type RuntimeOptions } from '../../src/executors/index.js';
import type { RuntimeKind } from '../../src/executors/runtime.js';
import { startGatewayServer } from '../../src/gateway/server.js';
import type { AuditRecord, GatewayJob } from '../../src/gateway/target.js';
import { randomToken } from '../../src/jobs/gateway/handshake.js';
import type { Keepalive } from '../../src/jobs/gateway/keepalive.js';
import { registerGateway, unregisterGateway } from '../../src/jobs/gateway/registration.js';
import { DEFAULT_PREFIX } from '../../src/jobs/keys.js';

export interface HostConfig {
  runtime: RuntimeKind;
  singularityBin?: string;
  redisUrl: string;
  queue: string;
  jobId: string;
  attempt?: number;
  network: boolean;
  command: string[];
  image: string;
  imageTarball: string;
  label: Record<string, string>;
  /** PEM files: the gateway serves TLS, and its entry says so. */
  tls?: { cert: string; key: string };
  /** The server's pings and silent-peer limit (default: the gateway's). */
  keepalive?: Keepalive;
}

/** How long an entry lasts unless refreshed (a worker's lock duration plays this part). */
const ENTRY_TTL_MS = 5_000;

const config = JSON.parse(process.argv[2] ?? '{}') as HostConfig;
const logger = pino({ level: 'silent' });
const sink = () =>
  new Writable({
    write: (_chunk, _encoding, done) => done(),
  });

const dir = await mkdtemp(join(tmpdir(), 'stevedore-gateway-host-'));
const options: RuntimeOptions = {
  singularity: config.singularityBin
    ? { bin: config.singularityBin, sifCache: join(dir, 'sif'), stateDir: join(dir, 'state') }
    : undefined,
  podman: { socket: join(dir, 'podman.sock'), searchPath: process.env.PATH },
};
const runtime = await openRuntime(config.runtime, options);
const executor = createExecutor(runtime, { labels: config.label, logger });
const ended = new AbortController();
const redis = new Redis(config.redisUrl);
redis.on('error', () => undefined); // a failed command rejects; the refresher logs nothing either way
const address = { queue: config.queue, prefix: DEFAULT_PREFIX };
const attempt = config.attempt ?? 1;
const workerId = `gateway-host-${process.pid}`;
let refresher: NodeJS.Timeout | undefined;

async function shutdown(code: number): Promise<never> {
  clearInterval(refresher);
  ended.abort();
  await unregisterGateway(redis, address, config.jobId, { workerId, attempt }).catch(() => undefined);
  await server?.close();
  await executor.stop().catch(() => undefined);
  await executor.close();
  await runtime.close();
  redis.disconnect();
  await rm(dir, { recursive: true, force: true });
  process.exit(code);
}
process.once('SIGTERM', () => void shutdown(0));

let server: Awaited<ReturnType<typeof startGatewayServer>> | undefined;
try {
  const image = await executor.loadImage({
    image: config.image,
    tarballPath: config.imageTarball,
    pullPolicy: 'if-not-present',
  });
  await executor.create(
    {
      image: config.image,
      command: config.command,
      env: {},
      bindMounts: {},
      vcpus: 0,
      ramBytes: 0,
      enableNetwork: config.network,
      init: true,
      stdout: sink(),
      stderr: sink(),
    },
    image,
  );
  await executor.start();
  const job: GatewayJob = {
    jobId: config.jobId,
    attempt,
    secret: randomToken(),
    target: executor,
    networkEnabled: config.network,
    ended: ended.signal,
  };
  // The job ending by itself ends its sessions, as the worker's run does.
  void executor.wait().then(
    () => ended.abort(),
    () => ended.abort(),
  );
  server = await startGatewayServer({
    listen: { host: '127.0.0.1', port: 0 },
    ...(config.tls
      ? { tls: { cert: await readFile(config.tls.cert), key: await readFile(config.tls.key) } }
      : {}),
    ...(config.keepalive ? { keepalive: config.keepalive } : {}),
    jobs: {
      find: (jobId) => (jobId === job.jobId ? job : undefined),
      registration: async () => null,
    },
    policy: { exec: true, forward: true, execUsers: null },
    audit: {
      started: () => undefined,
      ended: (_job, record: AuditRecord) => {
        process.stderr.write(`audit ${JSON.stringify(record)}\n`);
      },
    },
    logger,
  });
  const entry = {
    host: '127.0.0.1',
    port: server.address.port,
    tls: config.tls !== undefined,
    attempt,
    workerId,
    secret: job.secret,
  };
  await registerGateway(redis, address, config.jobId, entry, ENTRY_TTL_MS);
  refresher = setInterval(() => {
    void registerGateway(redis, address, config.jobId, entry, ENTRY_TTL_MS).catch(() => undefined);
  }, ENTRY_TTL_MS / 3);
  process.stdout.write(
    `${JSON.stringify({ port: server.address.port, containerId: executor.containerId })}\n`,
  );
} catch (error) {
  process.stderr.write(`gateway host failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  await shutdown(1);
}
