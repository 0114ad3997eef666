import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { type Logger, pino } from 'pino';

/** How long a redis-server gets to answer after spawn, and to exit after SIGTERM. */
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;

export interface RedisServerOptions {
  /** Directory for the append-only file and dump; created when missing. */
  dataDir: string;
  /** 0 = pick a free loopback port. */
  port?: number;
  /** redis-server binary; found on PATH by default. */
  bin?: string;
  logger?: Logger;
}

/** A free TCP port on 127.0.0.1, as the kernel hands it out. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * A private redis-server bound to loopback with its append-only file on, so it can be stopped
 * and started again on the same port and data. Used by the worker when no REDIS_URL is given,
 * and by the tests.
 */
export class RedisServerProcess {
  private child: ChildProcess | undefined;
  private portNumber: number;
  private readonly log: Logger;

  constructor(private readonly options: RedisServerOptions) {
    this.portNumber = options.port ?? 0;
    this.log = options.logger ?? pino({ level: 'silent' });
  }

  get port(): number {
    return this.portNumber;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.portNumber}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    if (this.running) return;
    await mkdir(this.options.dataDir, { recursive: true });
    if (this.portNumber === 0) this.portNumber = await freePort();
    const bin = this.options.bin ?? 'redis-server';
    // biome-ignore format: one flag and its value per line
    const args = [
      '--port', String(this.portNumber),
      '--bind', '127.0.0.1',
      '--dir', this.options.dataDir,
      '--appendonly', 'yes',
      '--appendfsync', 'everysec',
      '--save', '',
      // BullMQ needs keys never evicted (docs/pitfalls.md, "Connections").
      '--maxmemory-policy', 'noeviction',
      '--daemonize', 'no',
      '--logfile', '',
    ];
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let output = '';
    const remember = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-4000);
    };
    child.stdout?.on('data', remember);
    child.stderr?.on('data', remember);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(
          new Error(
            `redis-server did not become ready on port ${this.portNumber} within ${START_TIMEOUT_MS} ms: ${output.trim()}`,
          ),
        );
      }, START_TIMEOUT_MS);
      const onData = (chunk: Buffer): void => {
        if (chunk.toString().includes('Ready to accept connections')) done();
      };
      const onError = (error: NodeJS.ErrnoException): void => {
        clearTimeout(timer);
        reject(
          error.code === 'ENOENT'
            ? new Error(
                `${bin} not found on PATH: install it (apt-get install redis-server) or set REDIS_URL`,
              )
            : error,
        );
      };
      const onExit = (code: number | null): void => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with code ${code} before it was ready: ${output.trim()}`));
      };
      const done = (): void => {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.off('exit', onExit);
        child.off('error', onError);
        resolve();
      };
      child.stdout?.on('data', onData);
      child.once('error', onError);
      child.once('exit', onExit);
    });
    this.log.info(
      { port: this.portNumber, dataDir: this.options.dataDir, pid: child.pid },
      'redis-server started',
    );
  }

  /** SIGTERM (Redis flushes its append-only file), then SIGKILL if it hangs. */
  async stop(): Promise<void> {
    await this.terminate('SIGTERM');
  }

  /** SIGKILL at once, as a crash would. */
  async kill(): Promise<void> {
    await this.terminate('SIGKILL');
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  private async terminate(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
    this.log.info({ port: this.portNumber, signal }, 'redis-server stopped');
  }
}
