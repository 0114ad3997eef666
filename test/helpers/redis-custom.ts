import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/worker/redis-server.js';
import { REDIS_PID_DIR } from './redis.js';

/** redis-server prints this once it accepts connections (Redis 7). */
const READY_LINE = 'Ready to accept connections';
const START_TIMEOUT_MS = 10_000;

/**
 * A redis-server with settings of the test's own (TLS, an ACL file), on a random loopback port,
 * registered for the leak check like TestRedis. Readiness is its own log line, since a TLS-only
 * or password-protected server does not answer a plain PING.
 */
export class CustomRedis {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    private readonly dir: string,
  ) {}

  /** `args(port, dir)` gives the settings beyond port, bind and data directory. */
  static async start(
    args: (port: number, dir: string) => string[] | Promise<string[]>,
  ): Promise<CustomRedis> {
    const dir = await mkdtemp(join(tmpdir(), 'stevedore-test-redis-custom-'));
    const port = await freePort();
    const base = [
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
    ];
    const child = spawn('redis-server', [...base, ...(await args(port, dir))], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const redis = new CustomRedis(child, port, dir);
    await mkdir(REDIS_PID_DIR, { recursive: true });
    await writeFile(join(REDIS_PID_DIR, String(child.pid)), dir);
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`redis-server not ready: ${output}`)),
        START_TIMEOUT_MS,
      );
      child.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes(READY_LINE)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited (${code}) before it was ready: ${output}`));
      });
    }).catch(async (error: unknown) => {
      await redis.close();
      throw error;
    });
    return redis;
  }

  get dataDir(): string {
    return this.dir;
  }

  async close(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGKILL');
      await exited;
    }
    await unlink(join(REDIS_PID_DIR, String(this.child.pid))).catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true });
  }
}
