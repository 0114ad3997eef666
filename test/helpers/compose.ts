import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type Result } from 'execa';
import { testQueue } from './stevedore.js';

const REPO = join(import.meta.dirname, '..', '..');
export const STACK = join(REPO, 'scripts', 'stack.sh');
export const SEED = join(REPO, 'scripts', 'seed-images.sh');
/** A cold `up` seeds the base images (debootstrap, ~4 min here) and builds the worker image. */
export const COLD_UP_MS = 10 * 60_000;

/** A loopback port nothing listens on now, for the stack's published Redis. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('freePort: no TCP address');
  return address.port;
}

/**
 * The compose stack as a user runs it, through scripts/stack.sh, under a project name, env file,
 * Redis port, queue and log dir of its own, so it shares nothing with a stack on this host.
 */
export class ComposeStack {
  readonly project = `stevedore-test-${process.pid}-${Date.now().toString(36)}`;
  /** Starts with `test-`, so the leak check claims a namespace holder the stack's workers left. */
  readonly queue = testQueue();
  readonly password = `test${Date.now().toString(16)}`;
  private dir = '';
  private port = 0;

  /** `env` overrides the stack's settings below (e.g. STEVEDORE_ON_SHUTDOWN, STEVEDORE_CONCURRENCY). */
  constructor(private readonly env: Record<string, string> = {}) {}

  get logDir(): string {
    return join(this.dir, 'logs');
  }

  /** The host directory the stack's policy lets jobs bind (STEVEDORE_JOB_DATA). */
  get jobData(): string {
    return join(this.dir, 'data');
  }

  /** The workers' policy file; stack.sh writes its default there (STEVEDORE_POLICY). */
  get policyFile(): string {
    return join(this.dir, 'policy.yml');
  }

  /** REDIS_URL of the stack's Redis as published on the host. */
  get redisUrl(): string {
    return `redis://:${this.password}@127.0.0.1:${this.port}`;
  }

  async prepare(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'stevedore-compose-'));
    await mkdir(this.logDir);
    this.port = await freePort();
  }

  /** The env file stack.sh writes for this stack (never the repo's .env). */
  get envFile(): string {
    return join(this.dir, 'env');
  }

  /** Runs `scripts/stack.sh -p <project> …args`; rejects with its output when it fails. */
  async stack(args: string[], timeoutMs = 120_000): Promise<Result> {
    const result = await execa('bash', [STACK, '-p', this.project, ...args], {
      cwd: REPO,
      reject: false,
      all: true,
      timeout: timeoutMs,
      env: {
        STEVEDORE_ENV_FILE: this.envFile,
        STEVEDORE_REDIS_PASSWORD: this.password,
        STEVEDORE_REDIS_PORT: String(this.port),
        STEVEDORE_QUEUE: this.queue,
        STEVEDORE_LOG_DIR: this.logDir,
        STEVEDORE_JOB_DATA: this.jobData,
        STEVEDORE_POLICY: this.policyFile,
        STEVEDORE_CONCURRENCY: '2',
        STEVEDORE_SHUTDOWN_GRACE_MS: '5000',
        STEVEDORE_LOCK_DURATION_MS: '5000',
        LOG_LEVEL: 'warn',
        ...this.env,
      },
    });
    if (result.exitCode !== 0) {
      throw new Error(`scripts/stack.sh ${args.join(' ')} failed (exit ${result.exitCode}):\n${result.all}`);
    }
    return result;
  }

  /** `down -v` if anything of the project is left, then the temporary directory. */
  async close(): Promise<void> {
    if (!this.dir) return;
    await this.stack(['down', '-v', '--remove-orphans']).catch((error: Error) => console.warn(error.message));
    await rm(this.dir, { recursive: true, force: true });
    this.dir = '';
  }
}
