import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisServerProcess } from '../../src/worker/redis-server.js';

/** Every test redis-server leaves its pid here while alive; the global teardown checks it. */
export const REDIS_PID_DIR = join(tmpdir(), 'stevedore-test-redis-pids');

/** A private redis-server for one test file: random loopback port, its own data directory. */
export class TestRedis {
  private constructor(
    readonly server: RedisServerProcess,
    private readonly dataDir: string,
  ) {}

  static async start(): Promise<TestRedis> {
    const dataDir = await mkdtemp(join(tmpdir(), 'stevedore-test-redis-'));
    const redis = new TestRedis(new RedisServerProcess({ dataDir }), dataDir);
    await redis.boot();
    return redis;
  }

  get url(): string {
    return this.server.url;
  }

  get port(): number {
    return this.server.port;
  }

  /** Stops the server (SIGTERM, data flushed) and keeps port and data for restart(). */
  async stop(): Promise<void> {
    await this.forget();
    await this.server.stop();
  }

  /** Starts it again on the same port and the same data. */
  async restart(): Promise<void> {
    await this.stop();
    await this.boot();
  }

  async startAgain(): Promise<void> {
    await this.boot();
  }

  /** Kills the server and removes its data; safe to call twice. */
  async close(): Promise<void> {
    await this.forget();
    await this.server.kill();
    await rm(this.dataDir, { recursive: true, force: true });
  }

  private async boot(): Promise<void> {
    await this.server.start();
    await mkdir(REDIS_PID_DIR, { recursive: true });
    await writeFile(join(REDIS_PID_DIR, String(this.server.pid)), this.dataDir);
  }

  private async forget(): Promise<void> {
    if (this.server.pid) await unlink(join(REDIS_PID_DIR, String(this.server.pid))).catch(() => undefined);
  }
}
