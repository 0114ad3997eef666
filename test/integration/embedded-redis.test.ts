import { mkdtemp, readdir, readFile, readlink, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import type { ResultPromise } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { StevedoreClient } from '../../src/jobs/client.js';
import { redactRedisUrl } from '../../src/jobs/redis-url.js';
import { stevedore } from '../helpers/cli.js';
import { testDocker } from '../helpers/docker.js';
import { removeHoldersOf } from '../helpers/holders.js';
import { duplicateKeys } from '../helpers/json-keys.js';
import { useLeakCheck } from '../helpers/leaks.js';
import { busybox, testPolicy, testQueue, writePolicy } from '../helpers/stevedore.js';

interface LogLine {
  msg: string;
  redisPid?: number;
  url?: string;
  replaced?: number;
}

/** A `stevedore worker` process whose pino lines are kept, raw and parsed. */
class WorkerProcess {
  readonly raw: string[] = [];
  readonly child: ResultPromise;
  private buffered = '';
  private readonly waiters: { msg: string; resolve: (line: LogLine) => void }[] = [];

  constructor(env: Record<string, string>) {
    this.child = stevedore(['worker', '--concurrency', '1'], { env });
    this.child.catch(() => undefined);
    this.child.stdout?.on('data', (chunk: Buffer) => {
      this.buffered += chunk.toString();
      const lines = this.buffered.split('\n');
      this.buffered = lines.pop() ?? '';
      for (const text of lines.filter(Boolean)) {
        this.raw.push(text);
        const line = JSON.parse(text) as LogLine;
        for (const w of this.waiters.filter((x) => x.msg === line.msg)) w.resolve(line);
      }
    });
  }

  /** The first line with this message (waits for it). */
  line(msg: string): Promise<LogLine> {
    const seen = this.raw.map((t) => JSON.parse(t) as LogLine).find((l) => l.msg === msg);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      this.waiters.push({ msg, resolve });
      void this.child.then((r) =>
        reject(new Error(`worker exited (${r.exitCode}) before "${msg}": ${r.stderr}`)),
      );
    });
  }

  /** Its last log lines, for an assertion's message. */
  tail(lines = 15): string {
    return this.raw.slice(-lines).join('\n');
  }

  async kill(signal: NodeJS.Signals): Promise<number | undefined> {
    this.child.kill(signal);
    return (await this.child).exitCode;
  }
}

const STARTED = 'no REDIS_URL given: started an embedded redis-server (loopback only, append-only file on)';
const REUSED = 'no REDIS_URL given: using the embedded redis-server already running for this state directory';

/** Pids of the redis-servers working in `dataDir` (a redis-server chdirs to its data directory). */
async function serversIn(dataDir: string): Promise<number[]> {
  const real = await realpath(dataDir).catch(() => dataDir);
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const comm = await readFile(`/proc/${name}/comm`, 'utf8').catch(() => '');
    if (comm.startsWith('redis-server') && (await readlink(`/proc/${name}/cwd`).catch(() => '')) === real) {
      pids.push(Number(name));
    }
  }
  return pids;
}

// Its own set-up, not useTestWorld: the workers under test start their embedded redis-server.
describe('embedded Redis: one per state directory', () => {
  useLeakCheck();
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it('two workers share one server; after both are SIGKILLed the next reuses the orphan and runs the job submitted before; a dead server is taken over with its data', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'stevedore-shared-redis-'));
    const dataDir = join(stateDir, 'redis');
    const queue = testQueue();
    const workers: WorkerProcess[] = [];
    cleanup.push(async () => {
      for (const w of workers) await w.kill('SIGKILL').catch(() => undefined);
      for (const pid of await serversIn(dataDir)) process.kill(pid, 'SIGKILL');
      await removeHoldersOf(testDocker(), queue); // a SIGKILLed worker leaves its namespace holder
      await rm(stateDir, { recursive: true, force: true });
    });
    const env = {
      STEVEDORE_STATE_DIR: stateDir,
      STEVEDORE_QUEUE: queue,
      REDIS_URL: '',
      LOG_LEVEL: 'info',
      STEVEDORE_POLICY: await writePolicy(stateDir, testPolicy()),
      // As the Harness's workers: waits tied to these (30 s each by default) must end well
      // within the 30 s a stopped worker process is given before it is killed.
      STEVEDORE_LOCK_DURATION_MS: '5000',
      STEVEDORE_SHUTDOWN_GRACE_MS: '5000',
    };
    const start = (): WorkerProcess => {
      const w = new WorkerProcess(env);
      workers.push(w);
      return w;
    };
    const urlFile = async () => (await readFile(join(stateDir, 'redis.url'), 'utf8')).trim();

    const a = start();
    const first = await a.line(STARTED);
    await a.line('worker started');
    const b = start();
    const shared = await b.line(REUSED);
    await b.line('worker started');
    expect(shared.redisPid).toBe(first.redisPid);
    expect(shared.url).toBe(first.url);
    expect(await serversIn(dataDir)).toEqual([first.redisPid]);
    // The log shows the URL with its password hidden; the URL file, for clients, has it.
    const url = await urlFile();
    expect(redactRedisUrl(url)).toBe(first.url);
    const password = new URL(url).password;
    expect(password).toMatch(/^[0-9a-f]{64}$/);

    const client = new StevedoreClient({ redis: url, queue });
    cleanup.push(() => client.close());
    // Delayed, so that neither worker takes it before both are killed.
    const { id } = await client.submit(busybox(['echo', 'ran after the crash']), { delay: 3_000 });
    expect(await a.kill('SIGKILL')).toBeUndefined();
    expect(await b.kill('SIGKILL')).toBeUndefined();
    const admin = new Queue(queue, { connection: { url } });
    expect(await admin.getJobState(id)).toBe('delayed');
    await admin.close();
    expect(await serversIn(dataDir)).toEqual([first.redisPid]); // the orphan lives on

    const c = start();
    expect((await c.line(REUSED)).redisPid).toBe(first.redisPid);
    const result = await client.waitForResult(id, { timeoutMs: 30_000 });
    expect(result).toMatchObject({
      state: 'Complete',
      exitCode: 0,
      stdout: { tail: 'ran after the crash\n' },
    });
    expect(await serversIn(dataDir)).toEqual([first.redisPid]); // no third server
    expect(await urlFile()).toBe(url);

    // A server that dies with its worker: the next worker takes over its record, on the same data.
    await c.kill('SIGKILL');
    process.kill(first.redisPid as number, 'SIGKILL');
    const d = start();
    const takeover = await d.line(STARTED);
    expect(takeover.replaced).toBe(first.redisPid);
    expect(takeover.url).toBe(first.url); // its old port was free again
    expect(await urlFile()).toBe(url); // and its password kept, so clients holding the URL get in
    expect(await serversIn(dataDir)).toEqual([takeover.redisPid]);
    expect((await client.getResult(id))?.stdout.tail).toBe('ran after the crash\n');

    // The last worker to leave stops the server and removes its files.
    await d.line('worker started');
    expect(await d.kill('SIGTERM'), d.tail()).toBe(0);
    expect(await serversIn(dataDir)).toEqual([]);
    await expect(urlFile()).rejects.toThrow(/ENOENT/);

    // No log line of any of them names a key twice (the start-up line used to carry two `pid`s).
    const lines = workers.flatMap((w) => w.raw);
    expect(lines.length).toBeGreaterThan(8);
    expect(lines.filter((l) => duplicateKeys(l).length > 0)).toEqual([]);
    expect(lines.filter((l) => l.includes(password))).toEqual([]);
  });

  it('the last of two workers to stop stops the server; the first leaves it running', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'stevedore-shared-redis-'));
    const dataDir = join(stateDir, 'redis');
    const workers: WorkerProcess[] = [];
    cleanup.push(async () => {
      for (const w of workers) await w.kill('SIGKILL').catch(() => undefined);
      for (const pid of await serversIn(dataDir)) process.kill(pid, 'SIGKILL');
      await rm(stateDir, { recursive: true, force: true });
    });
    const env = {
      STEVEDORE_STATE_DIR: stateDir,
      STEVEDORE_QUEUE: testQueue(),
      REDIS_URL: '',
      LOG_LEVEL: 'info',
    };
    const a = new WorkerProcess(env);
    workers.push(a);
    const { redisPid } = await a.line(STARTED);
    await a.line('worker started');
    const b = new WorkerProcess(env);
    workers.push(b);
    await b.line('worker started');
    expect(await a.kill('SIGTERM')).toBe(0);
    expect(
      a.raw.some((l) => l.includes('left the embedded redis-server running: other workers use it')),
    ).toBe(true);
    expect(await serversIn(dataDir)).toEqual([redisPid]);
    expect(await b.kill('SIGTERM')).toBe(0);
    expect(b.raw.some((l) => l.includes('stopped the embedded redis-server: no other worker uses it'))).toBe(
      true,
    );
    expect(await serversIn(dataDir)).toEqual([]);
  });
});
