import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import { loadConfig, type WorkerConfig } from '../../src/config/worker.js';
import { StevedoreClient } from '../../src/jobs/client.js';
import { deploymentId } from '../../src/jobs/deployment.js';
import { DEFAULT_PREFIX } from '../../src/jobs/keys.js';
import type { JobSpecInput } from '../../src/jobs/spec.js';
import { startWorker, type WorkerDeps, type WorkerHandle } from '../../src/worker/worker.js';
import { TEST_IMAGE, testImageTarball } from './docker.js';
import { checkLeaks, type LeakBaseline, leakBaseline } from './leaks.js';
import { TestRedis } from './redis.js';
import { notePodman, testQueue } from './test-scope.js';

export { testQueue } from './test-scope.js';

/** A job spec on the test image, loaded from its tarball. */
export function busybox(command: string[], extra: Partial<JobSpecInput> = {}): JobSpecInput {
  return { image: TEST_IMAGE, imageTarball: testImageTarball(), command, ...extra };
}

/**
 * The policy test workers run under: what the tests need and no more. Tarballs from the test
 * image's directory; mounts of mkdtemp dirs under os.tmpdir() (tmpdir itself holds the
 * workers' state and log dirs, so the never-allowed rules still apply inside it).
 */
export function testPolicy(): Record<string, unknown> {
  return {
    imageTarballs: [{ hostPath: dirname(testImageTarball()) }],
    mounts: [{ hostPath: tmpdir(), readWrite: true }],
  };
}

/** Writes `policy` as JSON into `dir` and returns the file's path (for STEVEDORE_POLICY). */
export async function writePolicy(dir: string, policy: Record<string, unknown>): Promise<string> {
  const path = join(dir, 'policy.json');
  await writeFile(path, JSON.stringify(policy));
  return path;
}

/** A worker and client on one queue of a test Redis; `close()` ends both and removes the log dir. */
export class Harness {
  readonly workers: WorkerHandle[] = [];
  readonly clients: StevedoreClient[] = [];
  private dirs: string[] = [];

  /** `queue`: another harness's, for two deployments (two Redis servers) with one queue name. */
  constructor(
    readonly redis: TestRedis,
    readonly queue = testQueue(),
  ) {}

  async config(overrides: Partial<WorkerConfig> = {}): Promise<WorkerConfig> {
    if (overrides.runtime === 'podman') notePodman();
    const dir = await mkdtemp(join(tmpdir(), 'stevedore-worker-'));
    this.dirs.push(dir);
    return {
      ...loadConfig({}),
      redisUrl: this.redis.url,
      queue: this.queue,
      concurrency: 2,
      logDir: join(dir, 'logs'),
      stateDir: dir,
      lockDurationMs: 5_000,
      shutdownGraceMs: 5_000,
      workerId: `test-worker-${this.workers.length + 1}-${process.pid}`,
      policyPath: await writePolicy(dir, testPolicy()),
      ...overrides,
    };
  }

  async worker(overrides: Partial<WorkerConfig> = {}, deps: WorkerDeps = {}): Promise<WorkerHandle> {
    const handle = await startWorker(await this.config(overrides), {
      logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
      ...deps,
    });
    this.workers.push(handle);
    return handle;
  }

  /** The deployment id of this harness's Redis and queue (made now if no worker made it yet). */
  async deployment(): Promise<string> {
    const raw = new Redis(this.redis.url);
    raw.on('error', () => undefined); // a failed command rejects; the event adds nothing
    try {
      return await deploymentId(raw, { prefix: DEFAULT_PREFIX, queue: this.queue });
    } finally {
      raw.disconnect();
    }
  }

  client(): StevedoreClient {
    const client = new StevedoreClient({ redis: this.redis.url, queue: this.queue });
    this.clients.push(client);
    return client;
  }

  async close(): Promise<void> {
    for (const w of this.workers.splice(0)) await w.close({ graceMs: 0 });
    for (const c of this.clients.splice(0)) await c.close();
    for (const d of this.dirs.splice(0)) await rm(d, { recursive: true, force: true });
  }
}

/** What a worker test file runs against; each field is there once its hook has run. */
export interface TestWorld {
  /** The file's private redis-server. */
  readonly redis: TestRedis;
  /** A plain connection to it, for looking at keys. */
  readonly raw: Redis;
  /** This test's worker and client harness (its own queue and log dir). */
  readonly h: Harness;
}

/**
 * Registers the usual hooks of a worker test file: one Redis (and a plain connection) for the
 * file, a fresh Harness for each test, each closed after it. After each test, and after the
 * file, the leak check fails the test (or file) that left containers, namespace holders or
 * processes behind. Call it before the file's other hooks, so its checks run after their cleanup.
 */
export function useTestWorld(): TestWorld {
  let redis: TestRedis | undefined;
  let raw: Redis | undefined;
  let h: Harness | undefined;
  let fileBaseline: LeakBaseline | undefined;
  let testBaseline: LeakBaseline | undefined;
  beforeAll(async () => {
    fileBaseline = await leakBaseline();
    redis = await TestRedis.start();
    raw = new Redis(redis.url);
    raw.on('error', () => undefined); // the tests that stop Redis see it from their own connections
  });
  afterAll(async () => {
    raw?.disconnect();
    await redis?.close();
    if (fileBaseline) await checkLeaks(fileBaseline, 'the test file');
  });
  beforeEach(async () => {
    testBaseline = await leakBaseline();
    h = new Harness(redis as TestRedis);
  });
  afterEach(async () => {
    await h?.close();
    // The file's redis-server is the world's, even when a test restarted it under a new pid.
    const owned = redis?.server.pid ? [redis.server.pid] : [];
    if (testBaseline) await checkLeaks(testBaseline, 'the test', owned);
  });
  const ready = <T>(value: T | undefined, name: string): T => {
    if (value === undefined) throw new Error(`the test world's ${name} is used before its hook ran`);
    return value;
  };
  return {
    get redis() {
      return ready(redis, 'redis');
    },
    get raw() {
      return ready(raw, 'raw');
    },
    get h() {
      return ready(h, 'h');
    },
  };
}

/** Polls `probe` until it is truthy; fails after `timeoutMs`. */
export async function until<T>(
  probe: () => Promise<T | null | undefined | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Waits until the job's published phase is "running". */
export async function untilRunning(client: StevedoreClient, id: string, timeoutMs = 20_000): Promise<void> {
  await until(async () => (await client.getProgress(id))?.phase === 'running', timeoutMs);
}
