import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { pingReply } from '../../src/worker/redis-server.js';
import { REDIS_PID_DIR } from './redis.js';

export const run = promisify(execFile);
export const READY_MS = 15_000;

/** One redis-server process of a topology (a data node or a sentinel), with its pid on record for the leak check. */
export class Node {
  private child: ChildProcess | undefined;
  output = '';

  constructor(
    readonly port: number,
    readonly dir: string,
    private readonly args: string[],
  ) {}

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get alive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const child = spawn('redis-server', this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.on('error', (error) => {
      this.output += `\n${error.message}`;
    });
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-4000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    this.child = child;
    await mkdir(REDIS_PID_DIR, { recursive: true });
    await writeFile(join(REDIS_PID_DIR, String(child.pid)), this.dir);
    const deadline = Date.now() + READY_MS;
    while ((await pingReply(this.port)) !== '+PONG') {
      if (!this.alive)
        throw new Error(`redis-server on ${this.address} exited at start: ${this.output.trim()}`);
      if (Date.now() > deadline)
        throw new Error(`redis-server on ${this.address} did not answer: ${this.output}`);
      await sleep(20);
    }
  }

  /** SIGSTOP: the process stays, but answers nothing (nor its master's replication stream) until resume(). */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** SIGKILL, as a host that dies. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || !this.alive) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    await unlink(join(REDIS_PID_DIR, String(child.pid))).catch(() => undefined);
  }
}

/** redis-cli against the node on `port`, its reply trimmed. */
export const cli = async (port: number, ...args: string[]): Promise<string> =>
  (await run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args])).stdout.trim();

/** Polls `check` until it holds, or throws saying `what` did not happen within `ms`. */
export async function until(what: string, check: () => Promise<boolean>, ms = READY_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await sleep(50);
  }
}

/** A data node's arguments: loopback, no persistence, no eviction (BullMQ needs noeviction). */
export const dataArgs = (port: number, dir: string) => [
  '--port',
  String(port),
  '--bind',
  '127.0.0.1',
  '--dir',
  dir,
  '--save',
  '',
  '--appendonly',
  'no',
  '--maxmemory-policy',
  'noeviction',
];
