import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ResultPromise } from 'execa';
import { stevedore } from './cli.js';
import { ScratchEngine } from './scratch-engine.js';

/** What every host's worker shares: the Redis, the queue, the policy, and a lock short enough to test expiry. */
export interface RigShared {
  redisUrl: string;
  queue: string;
  policyPath: string;
  /** A directory for the hosts' state and log directories. */
  dir: string;
  lockDurationMs: number;
}

/**
 * One "host" of the many-hosts rig: a private Docker daemon (its own data root, exec root,
 * containerd, socket and bridge) and a worker process bound to it, with its own state and log
 * directories, as on a machine of its own. Only Redis is shared.
 */
export class TestHost {
  private worker: ResultPromise | undefined;
  private generation = 0;

  private constructor(
    readonly index: number,
    readonly engine: ScratchEngine,
    private readonly shared: RigShared,
  ) {}

  static async start(index: number, shared: RigShared): Promise<TestHost> {
    const engine = await ScratchEngine.start({ liveRestore: false, index });
    const host = new TestHost(index, engine, shared);
    await mkdir(host.logDir, { recursive: true });
    return host;
  }

  get logDir(): string {
    return join(this.shared.dir, `host-${this.index}`, 'logs');
  }

  /** The worker id of the worker started last: host-N-generation, so a result names its host. */
  get workerId(): string {
    return `host-${this.index}-${this.generation}`;
  }

  /** Starts this host's worker process (a new one after a kill: a new worker id). */
  startWorker(extraEnv: Record<string, string> = {}): void {
    this.generation += 1;
    const { shared } = this;
    const worker = stevedore(['worker'], {
      env: {
        REDIS_URL: shared.redisUrl,
        STEVEDORE_QUEUE: shared.queue,
        STEVEDORE_POLICY: shared.policyPath,
        STEVEDORE_STATE_DIR: join(shared.dir, `host-${this.index}`),
        STEVEDORE_LOG_DIR: this.logDir,
        STEVEDORE_LOCK_DURATION_MS: String(shared.lockDurationMs),
        STEVEDORE_WORKER_ID: this.workerId,
        STEVEDORE_CONCURRENCY: '2',
        DOCKER_HOST: `unix://${this.engine.socketPath}`,
        ...extraEnv,
      },
    });
    this.worker = worker;
  }

  /** SIGKILLs the worker alone: the engine and its containers go on. */
  async killWorker(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (!worker) return;
    worker.kill('SIGKILL');
    await worker;
  }

  /** The whole host dies at once: worker, engine, containerd, shims and job processes. */
  async die(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    worker?.kill('SIGSTOP');
    await this.engine.kill();
    worker?.kill('SIGKILL');
    await worker;
  }

  /** The host comes back: its engine on the same data root, then a new worker. */
  async comeBack(): Promise<void> {
    await this.engine.revive({ liveRestore: false });
    this.startWorker();
  }

  /** Stops the worker (SIGTERM, its own clean exit) and the engine, removing its containers and data. */
  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (worker) {
      worker.kill('SIGTERM');
      await worker;
    }
    await this.engine.close();
  }
}
