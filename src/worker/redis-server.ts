import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { type Logger, pino } from 'pino';

/** How long a redis-server gets to answer after spawn, and to exit after SIGTERM. */
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
/** Between readiness probes while redis-server starts (it answers within a few ms; loading a big AOF takes longer). */
const READY_PROBE_INTERVAL_MS = 20;

export interface RedisServerOptions {
  /** Directory for the append-only file and dump; created when missing. */
  dataDir: string;
  /** 0 = pick a free loopback port. */
  port?: number;
  /** redis-server binary; found on PATH by default. */
  bin?: string;
  /**
   * `requirepass` for the default user. It reaches the server on its stdin (`redis-server -`),
   * never its command line, which every local user can read in /proc.
   */
  password?: string;
  logger?: Logger;
  /**
   * Run the server in its own session with its output appended to this file, so that it
   * outlives this process and a Ctrl-C in this process's terminal (the embedded Redis, which
   * other workers may share). Without it the server's output is piped to us and it is our child only.
   */
  detachedLogFile?: string;
}

/** A free TCP port on 127.0.0.1, as the kernel hands it out; `preferred` when it can be bound. */
export async function freePort(preferred = 0): Promise<number> {
  const tryListen = (port: number): Promise<number> =>
    new Promise((resolve, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        const address = server.address();
        const bound = typeof address === 'object' && address ? address.port : 0;
        server.close(() => resolve(bound));
      });
    });
  if (preferred > 0) {
    const port = await tryListen(preferred).catch(() => 0);
    if (port > 0) return port;
  }
  return tryListen(0);
}

/** One command in the Redis protocol (RESP array of bulk strings), so any byte in a password is safe. */
const resp = (...words: string[]): string =>
  `*${words.length}\r\n${words.map((w) => `$${Buffer.byteLength(w)}\r\n${w}\r\n`).join('')}`;

/**
 * The first reply line of `PING` from 127.0.0.1:port ('+PONG', '-LOADING …', '-NOAUTH …'), after
 * `AUTH password` when one is given; undefined when nothing answers.
 */
export function pingReply(port: number, timeoutMs = 1_000, password?: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let reply = '';
    const finish = (value: string | undefined): void => {
      socket.destroy();
      resolve(value);
    };
    socket.setTimeout(timeoutMs, () => finish(undefined));
    socket.on('error', () => finish(undefined)); // nothing answers: that is the answer
    const lines = password === undefined ? 1 : 2; // AUTH's own reply comes first
    socket.once('connect', () =>
      socket.write(`${password === undefined ? '' : resp('AUTH', password)}${resp('PING')}`),
    );
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      const got = reply.split('\r\n');
      // A refused AUTH is the answer itself: the PING after it only says NOAUTH again.
      if (got.length > 1 && got[0]?.startsWith('-')) finish(got[0]);
      else if (got.length > lines) finish(got[lines - 1]);
    });
  });
}

const notFound = (bin: string): Error =>
  new Error(`${bin} not found on PATH: install it (apt-get install redis-server) or set REDIS_URL`);

/** `redis-server --version`'s `v=` field; rejects with what to install when the binary is missing. */
export function redisServerVersion(bin = 'redis-server'): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(bin, ['--version'], (error, stdout) => {
      if ((error as NodeJS.ErrnoException | null)?.code === 'ENOENT') reject(notFound(bin));
      else if (error) reject(new Error(`${bin} --version failed: ${error.message}`));
      else resolve(/v=(\S+)/.exec(stdout)?.[1] ?? stdout.trim());
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

  /** With the password when there is one: a secret, never to be logged (see redactRedisUrl). */
  get url(): string {
    const auth = this.options.password === undefined ? '' : `:${encodeURIComponent(this.options.password)}@`;
    return `redis://${auth}127.0.0.1:${this.portNumber}`;
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
    const password = this.options.password;
    const args = [
      ...(password === undefined ? [] : ['-']), // the rest of the configuration from stdin
      '--port',
      String(this.portNumber),
      '--bind',
      '127.0.0.1',
      '--dir',
      this.options.dataDir,
      '--appendonly',
      'yes',
      '--appendfsync',
      'everysec',
      '--save',
      '',
      // BullMQ needs keys never evicted (docs/pitfalls.md, "Connections").
      '--maxmemory-policy',
      'noeviction',
      '--daemonize',
      'no',
      '--logfile',
      '',
    ];
    const logFile = this.options.detachedLogFile;
    const logFd = logFile ? openSync(logFile, 'a') : undefined;
    let child: ChildProcess;
    try {
      const stdin = password === undefined ? 'ignore' : 'pipe';
      child =
        logFd === undefined
          ? spawn(bin, args, { stdio: [stdin, 'pipe', 'pipe'] })
          : spawn(bin, args, { stdio: [stdin, logFd, logFd], detached: true });
      // A config line; a password with a newline or quote would end or break it, so quote it.
      child.stdin?.on('error', () => undefined); // a server that exits at once: its exit says why
      child.stdin?.end(password === undefined ? undefined : `requirepass ${JSON.stringify(password)}\n`);
    } finally {
      if (logFd !== undefined) closeSync(logFd);
    }
    this.child = child;
    let output = '';
    const remember = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-4000);
    };
    child.stdout?.on('data', remember);
    child.stderr?.on('data', remember);
    const lastOutput = async (): Promise<string> =>
      logFile ? (await readFile(logFile, 'utf8').catch(() => '')).slice(-4000).trim() : output.trim();
    await this.untilReady(child, bin, lastOutput);
    // A detached server must not keep this process alive; we still see its exit while we run.
    if (logFile) child.unref();
    this.log.info(
      { port: this.portNumber, dataDir: this.options.dataDir, redisPid: child.pid },
      'redis-server started',
    );
  }

  /** Resolves when the server answers PING; rejects with its own words when it ends first or takes too long. */
  private async untilReady(
    child: ChildProcess,
    bin: string,
    lastOutput: () => Promise<string>,
  ): Promise<void> {
    let failure: (() => Promise<Error>) | undefined;
    const end = new Promise<void>((resolve) => {
      child.once('error', (error: NodeJS.ErrnoException) => {
        failure = async () =>
          error.code === 'ENOENT'
            ? notFound(bin)
            : new Error(`${bin} could not be started: ${error.message}`);
        resolve();
      });
      child.once('exit', (code, signal) => {
        failure ??= async () =>
          new Error(
            `redis-server exited (${signal ?? `code ${code}`}) before it was ready: ${await lastOutput()}`,
          );
        resolve();
      });
    });
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (failure) throw await failure();
      if ((await pingReply(this.portNumber, undefined, this.options.password)) === '+PONG') return;
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(
          `redis-server did not become ready on port ${this.portNumber} within ${START_TIMEOUT_MS} ms: ${await lastOutput()}`,
        );
      }
      await Promise.race([end, new Promise((r) => setTimeout(r, READY_PROBE_INTERVAL_MS))]);
    }
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
