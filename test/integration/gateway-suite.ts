import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { text } from 'node:stream/consumers';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RuntimeKind } from '../../src/executors/runtime.js';
import { StevedoreClient } from '../../src/jobs/client.js';
import { encodeFrame, FRAME } from '../../src/jobs/gateway/frames.js';
import type { ExecRequest } from '../../src/jobs/gateway/handshake.js';
import { type GatewayEntry, readGateway } from '../../src/jobs/gateway/registration.js';
import { DEFAULT_PREFIX, keys } from '../../src/jobs/keys.js';
import type { JobSpecInput } from '../../src/jobs/spec.js';
import { stevedore } from '../helpers/cli.js';
import { testDocker } from '../helpers/docker.js';
import type { GatewayClientAnswer, GatewayClientInput, GatewayTask } from '../helpers/gateway-client.js';
import { openRawExec } from '../helpers/gateway-raw-client.js';
import { removeHoldersOf } from '../helpers/holders.js';
import {
  busybox,
  testPolicy,
  testQueue,
  untilRunning,
  useTestWorld,
  writePolicy,
} from '../helpers/stevedore.js';
import { makeTestCerts } from '../helpers/test-certs.js';
import { notePodman } from '../helpers/test-scope.js';

const CLIENT = join(import.meta.dirname, '..', 'helpers', 'gateway-client.ts');

/** How a runtime is asked for, and what it cannot do yet (shown on purpose, with the reason). */
export interface GatewayRuntime {
  kind: RuntimeKind;
  /** Why it cannot be tested here; null when it can. */
  unavailable: string | null;
  /** Worker settings beside the common ones (the runtime's program, its socket, its cache). */
  env: (dir: string) => Record<string, string>;
  /** Why an exec with a terminal is refused on this runtime today; null when it works. */
  noTerminal: string | null;
  /** Why an exec with variables (--env) is refused on this runtime today; null when it works. */
  noEnv: string | null;
}

/** A port nobody listens on now, for a worker's STEVEDORE_GATEWAY. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof address === 'object' && address ? address.port : 0;
}

/** The gateway client in a process of its own: its answer, and a way to signal it (stop it, kill it). */
export function startGatewayClient(input: GatewayClientInput): {
  answer: Promise<GatewayClientAnswer>;
  signal(signal: NodeJS.Signals): void;
} {
  const child = execa(process.execPath, ['--import', 'tsx', CLIENT, JSON.stringify(input)], {
    reject: false,
    timeout: 120_000,
  });
  const answer = child.then((done) => {
    const line = done.stdout.trim().split('\n').at(-1) ?? '';
    try {
      return JSON.parse(line) as GatewayClientAnswer;
    } catch {
      throw new Error(`the gateway client gave no answer (exit ${done.exitCode}): ${done.stderr}`);
    }
  });
  return { answer, signal: (signal) => child.kill(signal) };
}

/** Runs the gateway client in a process of its own; resolves with its one-line answer. */
export const runGatewayClient = (input: GatewayClientInput): Promise<GatewayClientAnswer> =>
  startGatewayClient(input).answer;

interface WorkerProcess {
  id: string;
  port: number;
  log: () => string;
  /** Still running: no crash, no unhandled error or rejection ended it. */
  alive(): boolean;
  kill(signal: NodeJS.Signals): Promise<void>;
}

/**
 * Writes `bytes`, then resets the connection (RST, not FIN). The reset waits a little after the
 * write's callback: reset in the same turn of the loop, Node 20 sent neither RST nor FIN (seen
 * here: the peer heard nothing while the socket counted as closed).
 */
async function resetAfter(socket: Socket, bytes: Buffer): Promise<void> {
  await new Promise<void>((resolve, reject) =>
    socket.write(bytes, (error) => (error ? reject(error) : resolve())),
  );
  await new Promise((resolve) => setTimeout(resolve, 50));
  socket.resetAndDestroy();
}

/** The gateway suite against one runtime: a real worker process, clients in processes of their own. */
export function gatewaySuite(runtime: GatewayRuntime): void {
  if (runtime.unavailable) console.warn(`[skip] gateway on ${runtime.kind}: ${runtime.unavailable}`);
  describe.skipIf(runtime.unavailable !== null)(`gateway on ${runtime.kind}`, () => {
    const world = useTestWorld();
    const workers: WorkerProcess[] = [];
    let dir = '';
    let queue = '';
    let client: StevedoreClient;
    let signed: { id: string; privateKeyPath: string; trustedDir: string };

    /** Starts `stevedore worker` as a process of its own, serving the gateway on a free port. */
    const startWorker = async (extra: Record<string, string> = {}): Promise<WorkerProcess> => {
      const port = await freePort();
      const id = `gw-${runtime.kind}-${workers.length + 1}-${process.pid}`;
      const stateDir = join(dir, id);
      await mkdir(stateDir, { recursive: true });
      let log = '';
      const child = stevedore(['worker'], {
        env: {
          REDIS_URL: world.redis.url,
          STEVEDORE_QUEUE: queue,
          STEVEDORE_STATE_DIR: stateDir,
          STEVEDORE_POLICY: await writePolicy(stateDir, testPolicy()),
          STEVEDORE_RUNTIME: runtime.kind,
          STEVEDORE_GATEWAY: `127.0.0.1:${port}`,
          STEVEDORE_WORKER_ID: id,
          STEVEDORE_CONCURRENCY: '4',
          STEVEDORE_LOCK_DURATION_MS: '5000',
          STEVEDORE_SHUTDOWN_GRACE_MS: '0',
          LOG_LEVEL: 'info',
          ...runtime.env(dir),
          ...extra,
        },
      });
      child.stdout?.on('data', (chunk: Buffer) => {
        log += chunk.toString();
      });
      child.stderr?.on('data', (chunk: Buffer) => {
        log += chunk.toString();
      });
      const worker: WorkerProcess = {
        id,
        port,
        log: () => log,
        alive: () => child.exitCode === null && child.signalCode === null,
        kill: async (signal) => {
          child.kill(signal);
          await child;
        },
      };
      workers.push(worker);
      const deadline = Date.now() + 60_000;
      while (!log.includes('"worker started"')) {
        if (child.exitCode !== null || Date.now() > deadline)
          throw new Error(`the worker did not start: ${log}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return worker;
    };

    beforeAll(async () => {
      if (runtime.kind === 'podman') notePodman();
      dir = await mkdtemp(join(tmpdir(), `stevedore-gateway-${runtime.kind}-`));
      queue = testQueue();
      const pair = generateKeyPairSync('ed25519');
      signed = {
        id: 'ops',
        privateKeyPath: join(dir, 'ops.key'),
        trustedDir: join(dir, 'trusted'),
      };
      await mkdir(signed.trustedDir);
      await writeFile(signed.privateKeyPath, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
      await writeFile(
        join(signed.trustedDir, 'ops.pub'),
        pair.publicKey.export({ type: 'spki', format: 'pem' }),
      );
      client = new StevedoreClient({ redis: world.redis.url, queue });
      await startWorker();
    }, 120_000);
    afterEach(async () => {
      // Every job a test left running ends with it, so its container goes before the leak check.
      for (const id of started.splice(0)) {
        await client.cancel(id);
        await client.waitForResult(id, { timeoutMs: 60_000 }).catch(() => undefined);
      }
    }, 120_000);
    afterAll(async () => {
      for (const w of workers.splice(0)) await w.kill('SIGTERM');
      await client?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    }, 120_000);

    const started: string[] = [];

    /** Submits a job and waits until it runs and its gateway is registered. */
    const running = async (
      spec: JobSpecInput,
      on: StevedoreClient = client,
      onQueue = queue,
    ): Promise<{ id: string; entry: GatewayEntry }> => {
      const { id } = await on.submit(spec);
      if (on === client) started.push(id);
      await untilRunning(on, id, 60_000);
      const raw = new Redis(world.redis.url);
      try {
        for (let i = 0; i < 400; i++) {
          const entry = await readGateway(raw, { prefix: DEFAULT_PREFIX, queue: onQueue }, id);
          if (entry) return { id, entry };
          await new Promise((r) => setTimeout(r, 50));
        }
      } finally {
        raw.disconnect();
      }
      throw new Error(`job ${id} runs but registered no gateway`);
    };

    const sleeper = (extra: Partial<JobSpecInput> = {}) => busybox(['sleep', '600'], extra);
    const exec = (command: string[], more: Partial<ExecRequest> = {}): ExecRequest => ({
      op: 'exec',
      command,
      stdin: false,
      ...more,
    });
    const ask = (
      entry: GatewayEntry,
      jobId: string,
      task: GatewayTask,
      more: Omit<GatewayClientInput, 'entry' | 'jobId' | 'task'> = {},
    ) => runGatewayClient({ entry, jobId, task, ...more });

    it('gives the exit codes 0, 3 and 127 as they are, from another process', async () => {
      const { id, entry } = await running(sleeper());
      const codes = [];
      for (const command of [['true'], ['sh', '-c', 'echo out; echo err >&2; exit 3'], ['no-such-program']]) {
        codes.push(await ask(entry, id, { kind: 'exec', request: exec(command) }));
      }
      expect(codes.map((a) => a.exitCode)).toEqual([0, 3, 127]);
      expect(codes[1]).toMatchObject({ stdout: 'out\n', stderr: 'err\n' });
      expect(codes[2]?.stderr).toMatch(/no-such-program/);
    }, 180_000);

    it('carries 1 MB of binary stdin to stdout byte-exact, with stderr apart', async () => {
      const { id, entry } = await running(sleeper());
      const input = randomBytes(1024 * 1024);
      const stdinPath = join(dir, `${id}.in`);
      const stdoutPath = join(dir, `${id}.out`);
      await writeFile(stdinPath, input);
      const answer = await ask(entry, id, {
        kind: 'exec',
        request: exec(['sh', '-c', 'cat; echo on-stderr >&2'], { stdin: true }),
        stdinPath,
        stdoutPath,
      });
      expect(answer).toMatchObject({ exitCode: 0, stderr: 'on-stderr\n' });
      const output = await readFile(stdoutPath);
      expect(output.length).toBe(input.length);
      expect(output.equals(input)).toBe(true);
    }, 180_000);

    it(runtime.noTerminal
      ? `refuses a terminal, saying why (known difference: ${runtime.noTerminal})`
      : 'gives a terminal whose resize the program sees (stty size)', async () => {
      const { id, entry } = await running(sleeper());
      const answer = await ask(entry, id, {
        kind: 'tty',
        request: exec(['sh', '-c', 'while read x; do [ "$x" = q ] && exit 7; stty size; done'], {
          stdin: true,
          tty: { cols: 80, rows: 24 },
        }),
        first: '24 80',
        resize: { cols: 100, rows: 40 },
        second: '40 100',
        last: 'q\n',
      });
      if (runtime.noTerminal) {
        expect(answer.error?.message).toContain(
          'a terminal (-t) is not available on the Apptainer runtime yet',
        );
        return;
      }
      expect(answer.exitCode).toBe(7);
      expect(answer.stdout).toContain('24 80');
      expect(answer.stdout).toContain('40 100');
    }, 180_000);

    it(runtime.noEnv
      ? `refuses variables for an exec, saying why (known difference: ${runtime.noEnv})`
      : 'gives an exec the variables it asks for, and a working directory', async () => {
      const { id, entry } = await running(sleeper());
      const answer = await ask(entry, id, {
        kind: 'exec',
        request: exec(['sh', '-c', 'echo "$GREETING from $(pwd)"'], {
          env: { GREETING: 'hello' },
          workdir: '/tmp',
        }),
      });
      if (runtime.noEnv) {
        expect(answer.error?.message).toContain(
          'variables for an exec (--env) are not available on the Apptainer runtime yet',
        );
        return;
      }
      expect(answer).toMatchObject({ exitCode: 0, stdout: 'hello from /tmp\n' });
    }, 180_000);

    it('forwards 20 requests over 5 connections at once to a server in a job with network', async () => {
      const { id, entry } = await running(
        busybox(
          [
            'sh',
            '-c',
            'mkdir -p /tmp/www && echo hello-through-the-gateway > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www',
          ],
          { network: { enabled: true } },
        ),
      );
      const answer = await ask(entry, id, { kind: 'http', port: 8080, requests: 20, connections: 5 });
      expect(answer.error).toBeUndefined();
      expect(answer.answers).toHaveLength(20);
      for (const a of answer.answers ?? [])
        expect(a).toEqual({ status: 200, body: 'hello-through-the-gateway\n' });
      expect(answer.connections).toBeGreaterThanOrEqual(5);
    }, 180_000);

    it('refuses, saying which: no network, a wrong secret, another attempt, a finished job', async () => {
      const { id, entry } = await running(sleeper());
      const wrong = await ask({ ...entry, secret: randomBytes(32).toString('base64url') }, id, {
        kind: 'exec',
        request: exec(['true']),
      });
      expect(wrong.error).toMatchObject({ code: 'bad-secret' });
      expect(wrong.error?.message).toContain(`does not know the secret of job ${id}'s attempt 1`);

      const other = await ask({ ...entry, attempt: 2 }, id, { kind: 'exec', request: exec(['true']) });
      expect(other.error).toMatchObject({ code: 'other-attempt' });
      expect(other.error?.message).toContain('runs its attempt 1 here, not attempt 2');

      await client.cancel(id);
      await client.waitForResult(id, { timeoutMs: 60_000 });
      const finished = await ask(entry, id, { kind: 'exec', request: exec(['true']) });
      expect(finished.error).toMatchObject({ code: 'not-running' });
      expect(finished.error?.message).toContain(`job ${id} is not running`);
    }, 180_000);

    it('refuses a forward into a job without network, saying so', async () => {
      const { id, entry } = await running(sleeper());
      const answer = await ask(entry, id, { kind: 'http', port: 8080, requests: 1, connections: 1 });
      expect(answer.error).toMatchObject({ code: 'no-network' });
      expect(answer.error?.message).toContain(`job ${id} has no network: its loopback is its own`);
    }, 180_000);

    it('runs 10 execs at once in one job', async () => {
      const { id, entry } = await running(sleeper());
      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          ask(entry, id, { kind: 'exec', request: exec(['sh', '-c', `echo exec-${i}; exit ${i}`]) }),
        ),
      );
      expect(answers.map((a) => a.exitCode)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(answers.map((a) => a.stdout)).toEqual(answers.map((_, i) => `exec-${i}\n`));
    }, 180_000);

    it('ends an exec still running when the job ends with a clear "job ended"', async () => {
      const { id, entry } = await running(sleeper());
      const pending = ask(entry, id, { kind: 'exec', request: exec(['sleep', '600']) });
      await waitForAudit(id, 'gateway-exec-start');
      await client.cancel(id);
      const answer = await pending;
      expect(answer.error, answer.error?.message).toMatchObject({ code: 'job-ended' });
      // The audit line comes before the engine starts the command: the job may end first.
      expect(answer.error?.message).toMatch(
        new RegExp(`^job ${id} ended (while the command ran|before the command could start)`),
      );
    }, 180_000);

    it('audits each exec and forward in events.log and the worker log, never stdin', async () => {
      const { id, entry } = await running(busybox(['sleep', '600'], { network: { enabled: true } }));
      const stdinPath = join(dir, `${id}.secret-in`);
      await writeFile(stdinPath, 'stdin-must-not-be-logged\n');
      await ask(entry, id, {
        kind: 'exec',
        request: exec(['sh', '-c', 'cat >/dev/null; exit 4'], {
          stdin: true,
          ...(runtime.noEnv ? {} : { env: { TOKEN: 'env-value-not-logged' } }),
        }),
        stdinPath,
      });
      await client.cancel(id);
      const result = await client.waitForResult(id, { timeoutMs: 60_000 });
      const events = await readFile(join(dirname(result.stdout.path as string), 'events.log'), 'utf8');
      const line = (event: string) => events.split('\n').find((l) => l.includes(` ${event} `)) ?? '';
      const start = JSON.parse(line('gateway-exec-start').replace(/^\S+ \S+ /, ''));
      const end = JSON.parse(line('gateway-exec').replace(/^\S+ \S+ /, ''));
      expect(start).toMatchObject({
        jobId: id,
        attempt: 1,
        op: 'exec',
        what: ['sh', '-c', 'cat >/dev/null; exit 4'],
        ...(runtime.noEnv ? {} : { envNames: ['TOKEN'] }),
        who: expect.stringMatching(/^address:127\.0\.0\.1$/),
      });
      expect(end).toMatchObject({ op: 'exec', exitCode: 4, startedAt: start.startedAt });
      expect(Date.parse(end.endedAt)).toBeGreaterThanOrEqual(Date.parse(start.startedAt));
      const log = workers[0]?.log() ?? '';
      expect(log).toContain('gateway exec ended');
      expect(log).toMatch(new RegExp(`"jobId":"${id}".*"exitCode":4`));
      for (const text of [events, log]) {
        expect(text).not.toContain('stdin-must-not-be-logged');
        expect(text).not.toContain('env-value-not-logged');
        expect(text).not.toContain(entry.secret);
      }
    }, 180_000);

    /** Waits until the job's gateway is registered by `workerId`. */
    const registeredBy = async (jobId: string, onQueue: string, workerId: string): Promise<GatewayEntry> => {
      const raw = new Redis(world.redis.url);
      try {
        for (let i = 0; i < 1800; i++) {
          const entry = await readGateway(raw, { prefix: DEFAULT_PREFIX, queue: onQueue }, jobId);
          if (entry?.workerId === workerId) return entry;
          await new Promise((r) => setTimeout(r, 50));
        }
      } finally {
        raw.disconnect();
      }
      throw new Error(`job ${jobId}'s gateway was not registered by ${workerId}`);
    };

    /** Waits for the `count`th audit line of the job in its worker's log (job ids repeat across queues). */
    const waitForAudit = async (jobId: string, what: string, worker = workers[0], count = 1) => {
      const message = what === 'gateway-exec-start' ? 'gateway exec started' : 'gateway exec ended';
      await waitForLine(
        worker,
        (l) => l.includes(message) && l.includes(`"jobId":"${jobId}"`),
        `"${message}" for job ${jobId}`,
        count,
      );
    };

    /** Waits until `count` lines of the worker's log match. */
    const waitForLine = async (
      worker: WorkerProcess | undefined,
      matches: (line: string) => boolean,
      what: string,
      count = 1,
    ) => {
      for (let i = 0; i < 1200; i++) {
        if ((worker?.log() ?? '').split('\n').filter(matches).length >= count) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      const gateway = (worker?.log() ?? '').split('\n').filter((l) => l.includes('gateway'));
      throw new Error(`no ${what} in the worker log; its gateway lines:\n${gateway.slice(-10).join('\n')}`);
    };

    /** A worker of its own on a queue of its own (a test that signs, or kills it). */
    const ownWorker = async (extra: Record<string, string> = {}) => {
      const ownQueue = testQueue();
      const worker = await startWorker({ STEVEDORE_QUEUE: ownQueue, ...extra });
      return { worker, queue: ownQueue };
    };

    it('refuses an unsigned request when the worker trusts keys, and takes a signed one', async () => {
      const own = await ownWorker({ STEVEDORE_TRUSTED_KEYS: signed.trustedDir });
      const signing = new StevedoreClient({
        redis: world.redis.url,
        queue: own.queue,
        signingKey: { id: signed.id, privateKey: await readFile(signed.privateKeyPath, 'utf8') },
      });
      try {
        const { id, entry } = await running(sleeper(), signing, own.queue);
        const unsigned = await ask(entry, id, { kind: 'exec', request: exec(['true']) });
        expect(unsigned.error).toMatchObject({ code: 'unsigned' });
        expect(unsigned.error?.message).toContain('only when signed by a trusted key');
        const ok = await ask(
          entry,
          id,
          { kind: 'exec', request: exec(['sh', '-c', 'exit 5']) },
          { signingKey: { id: signed.id, path: signed.privateKeyPath } },
        );
        expect(ok.exitCode).toBe(5);
        await signing.cancel(id);
        await signing.waitForResult(id, { timeoutMs: 60_000 });
      } finally {
        await signing.close();
        await own.worker.kill('SIGTERM');
      }
    }, 180_000);

    it('ends the client with a clear error, not a hang, when the worker is SIGKILLed during an exec; the next worker registers a new secret', async () => {
      const own = await ownWorker();
      const onOwn = new StevedoreClient({ redis: world.redis.url, queue: own.queue });
      let jobId: string | undefined;
      let next: WorkerProcess | undefined;
      try {
        const { id, entry } = await running(sleeper(), onOwn, own.queue);
        jobId = id;
        const pending = ask(entry, id, { kind: 'exec', request: exec(['sleep', '600']) });
        await waitForAudit(id, 'gateway-exec-start', own.worker);
        await own.worker.kill('SIGKILL');
        const answer = await pending;
        expect(answer.error?.message).toContain('ended without an exit code');
        expect(answer.error).toMatchObject({ code: 'lost' });

        // The next worker takes the job (adopting its container where the runtime can) and
        // registers it again with a secret of its own: the previous one is refused.
        next = await startWorker({ STEVEDORE_QUEUE: own.queue });
        const again = await registeredBy(id, own.queue, next.id);
        expect(again.secret).not.toBe(entry.secret);
        const stale = await ask({ ...again, secret: entry.secret }, id, {
          kind: 'exec',
          request: exec(['true']),
        });
        expect(stale.error).toMatchObject({ code: 'bad-secret' });
        expect((await ask(again, id, { kind: 'exec', request: exec(['true']) })).exitCode).toBe(0);
      } finally {
        next ??= await startWorker({ STEVEDORE_QUEUE: own.queue });
        try {
          if (jobId) {
            await onOwn.cancel(jobId);
            await onOwn.waitForResult(jobId, { timeoutMs: 90_000 });
          }
        } finally {
          await next.kill('SIGTERM');
          await onOwn.close();
          // A SIGKILLed worker cannot remove its namespace holder: it ends itself after 10 minutes
          // (docs/operations.md), longer than a test waits.
          if (runtime.kind === 'docker') await removeHoldersOf(testDocker(), own.queue);
        }
      }
    }, 240_000);

    it('serves TLS: a client without the CA is refused, naming STEVEDORE_GATEWAY_TLS_CA; with it the exit code comes through; a certificate for another name is refused', async () => {
      const certs = await makeTestCerts();
      const ca = await readFile(certs.ca);
      const own = await ownWorker({
        STEVEDORE_GATEWAY_TLS_CERT: certs.serverCert,
        STEVEDORE_GATEWAY_TLS_KEY: certs.serverKey,
      });
      // Signed by the same CA, for wrong.example: trusted, but not for 127.0.0.1, the address it advertises.
      const misnamed = await ownWorker({
        STEVEDORE_GATEWAY_TLS_CERT: certs.wrongNameCert,
        STEVEDORE_GATEWAY_TLS_KEY: certs.wrongNameKey,
      });
      const withCa = new StevedoreClient({ redis: world.redis.url, queue: own.queue, gatewayTls: { ca } });
      const withoutCa = new StevedoreClient({ redis: world.redis.url, queue: own.queue });
      const onMisnamed = new StevedoreClient({
        redis: world.redis.url,
        queue: misnamed.queue,
        gatewayTls: { ca },
      });
      const jobs: { on: StevedoreClient; id: string }[] = [];
      try {
        const { id, entry } = await running(sleeper(), withCa, own.queue);
        jobs.push({ on: withCa, id });
        expect(entry.tls).toBe(true);

        const untrusted = withoutCa.exec(id, ['true']);
        await expect(untrusted).rejects.toMatchObject({ name: 'GatewayError', code: 'tls' });
        await expect(untrusted).rejects.toThrow(
          /did not open a session: its TLS certificate is not trusted here \(.+\): give the CA .* STEVEDORE_GATEWAY_TLS_CA=FILE \(the CLI's --gateway-tls-ca FILE; in code, the client option gatewayTls: \{ ca \}\)/,
        );
        // The client option, in this process.
        const session = await withCa.exec(id, ['sh', '-c', 'echo over-tls; exit 4']);
        const [stdout, exitCode] = await Promise.all([text(session.stdout), session.exitCode]);
        expect({ stdout, exitCode }).toEqual({ stdout: 'over-tls\n', exitCode: 4 });
        // A client process of its own, given the CA file; without it, the same refusal.
        const task: GatewayTask = { kind: 'exec', request: exec(['sh', '-c', 'echo apart >&2; exit 6']) };
        expect(await ask(entry, id, task, { tlsCaPath: certs.ca })).toMatchObject({
          exitCode: 6,
          stderr: 'apart\n',
        });
        expect((await ask(entry, id, task)).error).toMatchObject({
          code: 'tls',
          message: expect.stringContaining('STEVEDORE_GATEWAY_TLS_CA'),
        });

        const other = await running(sleeper(), onMisnamed, misnamed.queue);
        jobs.push({ on: onMisnamed, id: other.id });
        const wrongName = onMisnamed.exec(other.id, ['true']);
        await expect(wrongName).rejects.toMatchObject({ code: 'tls' });
        await expect(wrongName).rejects.toThrow(
          /its TLS certificate does not name 127\.0\.0\.1, the address it advertises .*STEVEDORE_GATEWAY_ADVERTISE/,
        );

        // Plain TCP spoken to the TLS gateway: the handshake fails on the worker's side, which serves on.
        const plain = connect({ host: entry.host, port: entry.port });
        plain.on('error', () => undefined);
        await once(plain, 'connect');
        plain.write(encodeFrame(FRAME.hello, JSON.stringify({ v: 1, jobId: id })));
        await once(plain, 'close');
        const after = await withCa.exec(id, ['sh', '-c', 'exit 7']);
        expect(await after.exitCode).toBe(7);
        expect([own.worker.alive(), misnamed.worker.alive()]).toEqual([true, true]);
        expect(own.worker.log() + misnamed.worker.log()).not.toMatch(/unhandled|uncaught/i);
      } finally {
        for (const job of jobs) {
          await job.on.cancel(job.id);
          await job.on.waitForResult(job.id, { timeoutMs: 60_000 }).catch(() => undefined);
        }
        await Promise.all([withCa.close(), withoutCa.close(), onMisnamed.close()]);
        await own.worker.kill('SIGTERM');
        await misnamed.worker.kill('SIGTERM');
        await rm(certs.dir, { recursive: true, force: true });
      }
    }, 240_000);

    it('keeps a quiet session open past the silent-peer limit by pings, with its exit code, and lets go of a client that stops answering within it', async () => {
      // 2 s without a word from the peer and it is gone; pings every 500 ms, on both sides.
      const keepalive = { pingMs: 500, peerTimeoutMs: 2_000 };
      const own = await ownWorker({
        STEVEDORE_GATEWAY_PING_MS: String(keepalive.pingMs),
        STEVEDORE_GATEWAY_PEER_TIMEOUT_MS: String(keepalive.peerTimeoutMs),
      });
      const onOwn = new StevedoreClient({ redis: world.redis.url, queue: own.queue });
      let jobId: string | undefined;
      try {
        const { id, entry } = await running(sleeper(), onOwn, own.queue);
        jobId = id;
        // Silent for three times the limit: only pings and pongs cross meanwhile.
        const quiet = await ask(
          entry,
          id,
          { kind: 'exec', request: exec(['sh', '-c', 'sleep 6; echo late; exit 9']) },
          { keepalive },
        );
        expect(quiet).toMatchObject({ exitCode: 9, stdout: 'late\n' });

        // A stopped client (its host still answers TCP, the process nothing) is let go within the limit.
        const stopped = startGatewayClient({
          entry,
          jobId: id,
          task: { kind: 'exec', request: exec(['sleep', '600']) },
          keepalive,
        });
        await waitForAudit(id, 'gateway-exec-start', own.worker, 2);
        stopped.signal('SIGSTOP');
        await waitForLine(
          own.worker,
          (l) =>
            l.includes('gateway exec ended') &&
            l.includes(`"jobId":"${id}"`) &&
            /client went away: the other side sent nothing for \d+ s/.test(l),
          `the stopped client's session ended as silent`,
        );
        stopped.signal('SIGCONT');
        expect((await stopped.answer).error).toMatchObject({ code: 'lost' });
        expect(own.worker.alive()).toBe(true);
      } finally {
        if (jobId) {
          await onOwn.cancel(jobId);
          await onOwn.waitForResult(jobId, { timeoutMs: 60_000 }).catch(() => undefined);
        }
        await onOwn.close();
        await own.worker.kill('SIGTERM');
      }
    }, 180_000);

    it("tells the client what failed when the worker's own step fails (Redis answers an error to its lookup), and serves on", async () => {
      const { id, entry } = await running(sleeper());
      // A job this worker does not run: it asks Redis where the job went, and Redis answers WRONGTYPE.
      const ghost = `ghost-${id}`;
      const key = keys.gateway({ prefix: DEFAULT_PREFIX, queue }, ghost);
      const raw = new Redis(world.redis.url);
      try {
        await raw.hset(key, 'not', 'an entry');
        const answer = await ask(entry, ghost, { kind: 'exec', request: exec(['true']) });
        expect(answer.error).toMatchObject({ code: 'error' });
        expect(answer.error?.message).toMatch(
          new RegExp(
            `^gateway of job ${ghost} failed: the worker failed while authenticating the request \\(reading job ${ghost}'s gateway entry in Redis: WRONGTYPE .+\\): the session did not open; try again`,
          ),
        );
      } finally {
        await raw.del(key);
        raw.disconnect();
      }
      expect((await ask(entry, id, { kind: 'exec', request: exec(['sh', '-c', 'exit 5']) })).exitCode).toBe(
        5,
      );
      const log = workers[0]?.log() ?? '';
      expect(log).toMatch(/"phase":"authenticating the request".*"msg":"gateway: session failed"/);
      expect(workers[0]?.alive()).toBe(true);
    }, 180_000);

    it('survives clients that reset their connection mid-frame, before and during an exec, and audits the exec as the client gone', async () => {
      const { id, entry } = await running(sleeper());
      // Half a hello, then a reset.
      const early = connect({ host: entry.host, port: entry.port });
      early.on('error', () => undefined);
      await once(early, 'connect');
      await resetAfter(early, encodeFrame(FRAME.hello, JSON.stringify({ v: 1, jobId: id })).subarray(0, 7));
      // An open exec: half a stdin frame, then a reset.
      const open = await openRawExec(entry, id, exec(['sleep', '600'], { stdin: true }));
      await waitForAudit(id, 'gateway-exec-start');
      await resetAfter(open, encodeFrame(FRAME.stdin, Buffer.alloc(64, 1)).subarray(0, 20));
      await waitForLine(
        workers[0],
        (l) =>
          l.includes('gateway exec ended') &&
          l.includes(`"jobId":"${id}"`) &&
          l.includes('"end":"client went away: read ECONNRESET"'),
        'the reset exec audited as the client gone',
      );
      // The worker lives and serves on.
      expect((await ask(entry, id, { kind: 'exec', request: exec(['sh', '-c', 'exit 8']) })).exitCode).toBe(
        8,
      );
      expect(workers[0]?.alive()).toBe(true);
      expect(workers[0]?.log()).not.toMatch(/unhandled|uncaught/i);
    }, 180_000);
  });
}
