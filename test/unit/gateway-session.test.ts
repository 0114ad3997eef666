import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { Agent, createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect as connectTcp, createServer as createTcpServer } from 'node:net';
import { text } from 'node:stream/consumers';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type GatewayServer, startGatewayServer } from '../../src/gateway/server.js';
import type { AuditRecord, GatewayJob } from '../../src/gateway/target.js';
import { FramedSocket } from '../../src/jobs/gateway/framed-socket.js';
import { encodeFrame, FRAME, type Frame, parseJsonPayload } from '../../src/jobs/gateway/frames.js';
import { randomToken, workerProof } from '../../src/jobs/gateway/handshake.js';
import { parseHello } from '../../src/jobs/gateway/messages.js';
import type { GatewayEntry } from '../../src/jobs/gateway/registration.js';
import { openExec, openForward } from '../../src/jobs/gateway/session.js';
import type { GatewayPolicy } from '../../src/policy/policy.js';
import { processJob } from '../helpers/process-target.js';

const jobs = new Map<string, GatewayJob>();
const audit: AuditRecord[] = [];
const keys = generateKeyPairSync('ed25519');
let policy: GatewayPolicy = { exec: true, forward: true, execUsers: null };
let server: GatewayServer;
let signedServer: GatewayServer;

const serve = (signed: boolean) =>
  startGatewayServer({
    listen: { host: '127.0.0.1', port: 0 },
    jobs: {
      find: (jobId) => jobs.get(jobId),
      registration: async (jobId) => (jobId === 'moved' ? { attempt: 1, workerId: 'w-2' } : null),
    },
    policy: {
      get exec() {
        return policy.exec;
      },
      get forward() {
        return policy.forward;
      },
      get execUsers() {
        return policy.execUsers;
      },
    },
    trustedKey: signed ? (id) => (id === 'ops' ? keys.publicKey : undefined) : undefined,
    audit: { started: () => undefined, ended: (_job, record) => audit.push(record) },
    logger: pino({ level: 'silent' }),
  });

beforeAll(async () => {
  server = await serve(false);
  signedServer = await serve(true);
});
afterAll(async () => {
  await server.close();
  await signedServer.close();
});
afterEach(() => {
  jobs.clear();
  policy = { exec: true, forward: true, execUsers: null };
});

function register(jobId: string, options: Parameters<typeof processJob>[1] = {}) {
  const made = processJob(jobId, options);
  jobs.set(jobId, made.job);
  const entry = (on = server): GatewayEntry => ({
    host: '127.0.0.1',
    port: on.address.port,
    tls: false,
    attempt: made.job.attempt,
    workerId: 'w-1',
    secret: made.job.secret,
  });
  return { ...made, entry };
}

const run = async (entry: GatewayEntry, jobId: string, command: string[], stdin?: Buffer) => {
  const session = await openExec(entry, jobId, { op: 'exec', command, stdin: stdin !== undefined });
  if (stdin) session.stdin.end(stdin);
  const [stdout, stderr, exitCode] = await Promise.all([
    text(session.stdout),
    text(session.stderr),
    session.exitCode,
  ]);
  return { stdout, stderr, exitCode };
};

describe('gateway sessions over real sockets and processes', () => {
  it('brings back the exit code: 0, 3 and 127', async () => {
    const { entry } = register('j');
    expect((await run(entry(), 'j', ['true'])).exitCode).toBe(0);
    expect((await run(entry(), 'j', ['sh', '-c', 'exit 3'])).exitCode).toBe(3);
    expect((await run(entry(), 'j', ['sh', '-c', 'exec /no/such/program'])).exitCode).toBe(127);
  });

  it('carries 1 MB of binary stdin to stdout byte-exact, with stderr kept apart', async () => {
    const { entry } = register('j');
    const input = randomBytes(1024 * 1024);
    const session = await openExec(entry(), 'j', {
      op: 'exec',
      command: ['sh', '-c', 'cat; echo apart >&2'],
      stdin: true,
    });
    session.stdin.end(input);
    const chunks: Buffer[] = [];
    session.stdout.on('data', (c: Buffer) => chunks.push(c));
    const [stderr, exitCode] = await Promise.all([text(session.stderr), session.exitCode]);
    expect(Buffer.concat(chunks).equals(input)).toBe(true);
    expect(stderr).toBe('apart\n');
    expect(exitCode).toBe(0);
  });

  it('runs 10 execs into one job at once', async () => {
    const { entry } = register('j');
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => run(entry(), 'j', ['sh', '-c', `echo ${i}; exit ${i}`])),
    );
    expect(results.map((r) => [r.stdout, r.exitCode])).toEqual(
      Array.from({ length: 10 }, (_, i) => [`${i}\n`, i]),
    );
  });

  it('ends an exec clearly when the job ends', async () => {
    const { entry, end } = register('j');
    const session = await openExec(entry(), 'j', { op: 'exec', command: ['sleep', '30'], stdin: false });
    setTimeout(end, 100);
    await expect(session.exitCode).rejects.toThrow(/job j ended while the command ran/);
  });

  it('says the job ended, not an error, when the command could not start because the job was ending', async () => {
    const { job, entry, end } = register('j');
    jobs.set('j', {
      ...job,
      target: {
        ...job.target,
        // As Apptainer's exec does when the job's process is gone from /proc under it.
        execStream: async () => {
          end();
          throw new Error("exec: cannot read what the job's process 4779 runs as: ENOENT");
        },
      },
    });
    const session = await openExec(entry(), 'j', { op: 'exec', command: ['true'], stdin: false });
    await expect(session.exitCode).rejects.toMatchObject({ code: 'job-ended' });
    await expect(session.exitCode).rejects.toThrow(
      /^job j ended before the command could start: it did not run/,
    );
  });

  it('ends an exec with an error, not a hang, when the worker goes away', async () => {
    const own = await serve(false);
    const { entry } = register('j');
    const session = await openExec(entry(own), 'j', { op: 'exec', command: ['sleep', '30'], stdin: false });
    setTimeout(() => void own.close(), 100);
    await expect(session.exitCode).rejects.toThrow(/ended without an exit code/);
  });

  it('refuses, saying which: not running, another attempt, moved, a wrong secret', async () => {
    const { entry } = register('j', { attempt: 2 });
    await expect(run({ ...entry(), attempt: 1 }, 'j', ['true'])).rejects.toThrow(
      /runs its attempt 2 here, not attempt 1/,
    );
    await expect(run(entry(), 'gone', ['true'])).rejects.toThrow(/job gone is not running/);
    await expect(run(entry(), 'moved', ['true'])).rejects.toThrow(/runs on worker w-2 now/);
    await expect(
      run({ ...entry(), secret: randomBytes(32).toString('base64url') }, 'j', ['true']),
    ).rejects.toThrow(/does not know the secret of job j's attempt 2/);
  });

  it('refuses a forward into a job without network, and what the policy forbids', async () => {
    const { entry } = register('j', { network: false });
    await expect(openForward(entry(), 'j', 80)).rejects.toThrow(/has no network: its loopback is its own/);
    policy = { exec: true, forward: true, execUsers: ['nobody'] };
    await expect(
      openExec(entry(), 'j', { op: 'exec', command: ['true'], user: 'root', stdin: false }),
    ).rejects.toThrow(/does not allow exec as user "root"/);
    policy = { exec: false, forward: true, execUsers: null };
    await expect(run(entry(), 'j', ['true'])).rejects.toThrow(/does not allow exec/);
  });

  it('takes only signed requests when keys are trusted', async () => {
    const { entry } = register('j');
    await expect(run(entry(signedServer), 'j', ['true'])).rejects.toThrow(
      /only when signed by a trusted key/,
    );
    const session = await openExec(
      entry(signedServer),
      'j',
      { op: 'exec', command: ['sh', '-c', 'exit 5'], stdin: false },
      { signingKey: { id: 'ops', privateKey: keys.privateKey } },
    );
    expect(await session.exitCode).toBe(5);
    expect(audit.at(-1)).toMatchObject({ jobId: 'j', who: 'key:ops', op: 'exec', exitCode: 5 });
  });

  it('forwards 20 requests over 5 connections at once to a server in the job', async () => {
    const web = createServer((req, res) => res.end(`you asked for ${req.url}`));
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    const port = (web.address() as AddressInfo).port;
    const { entry } = register('j');
    // A local listener that opens one gateway connection per accepted connection, as `stevedore port-forward` does.
    const local = createTcpServer((socket) => {
      socket.on('error', () => undefined);
      openForward(entry(), 'j', port).then(
        (remote) => {
          remote.on('error', () => socket.destroy());
          socket.pipe(remote).pipe(socket);
        },
        () => socket.destroy(),
      );
    });
    await new Promise<void>((resolve) => local.listen(0, '127.0.0.1', resolve));
    const agent = new Agent({ keepAlive: true, maxSockets: 5 });
    const get = (path: string) =>
      new Promise<string>((resolve, reject) => {
        httpRequest({ host: '127.0.0.1', port: (local.address() as AddressInfo).port, path, agent }, (res) =>
          text(res).then(resolve, reject),
        )
          .on('error', reject)
          .end();
      });
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => get(`/${i}`)));
    expect(answers).toEqual(Array.from({ length: 20 }, (_, i) => `you asked for /${i}`));
    agent.destroy();
    local.close();
    web.close();
    await expect.poll(() => audit.filter((a) => a.op === 'forward').length).toBeGreaterThanOrEqual(5);
    expect(audit.find((a) => a.op === 'forward')).toMatchObject({
      what: port,
      bytes: { toJob: expect.any(Number) },
    });
  });
});

describe('a worker that fails at a session tells its client what failed, and serves on', () => {
  /** What the next session's worker side does wrong: throw in the Redis lookup, in either audit line, or in the exec. */
  let fault: 'registration' | 'audit-start' | 'audit-end' | 'exec' | null = null;
  const logged: { phase?: string; msg: string }[] = [];
  let failing: GatewayServer;
  const logger = pino(
    { level: 'error' },
    {
      write: (line: string) => {
        logged.push(JSON.parse(line) as { phase?: string; msg: string });
      },
    },
  );

  beforeAll(async () => {
    failing = await startGatewayServer({
      listen: { host: '127.0.0.1', port: 0 },
      jobs: {
        find: (jobId) => jobs.get(jobId),
        registration: async () => {
          if (fault === 'registration')
            throw new Error(
              "reading job gone's gateway entry in Redis: WRONGTYPE Operation against a key holding the wrong kind of value",
            );
          return null;
        },
      },
      policy: { exec: true, forward: true, execUsers: null },
      audit: {
        started: () => {
          if (fault === 'audit-start') throw new Error('events.log: EIO');
        },
        ended: (_job, record) => {
          if (fault === 'audit-end') throw new Error('events.log: EIO');
          audit.push(record);
        },
      },
      logger,
    });
  });
  afterAll(() => failing.close());
  afterEach(() => {
    fault = null;
    logged.length = 0;
  });

  const entryOn = (made: ReturnType<typeof register>) => made.entry(failing);

  it('refuses with the phase and what to do when authentication throws (Redis answering an error)', async () => {
    const made = register('j');
    fault = 'registration';
    const refused = run(entryOn(made), 'gone', ['true']);
    await expect(refused).rejects.toMatchObject({ name: 'GatewayError', code: 'error' });
    await expect(refused).rejects.toThrow(
      /^gateway of job gone failed: the worker failed while authenticating the request \(reading job gone's gateway entry in Redis: WRONGTYPE .*\): the session did not open; try again, and if it fails again, the worker's log has the error/,
    );
    expect(logged).toMatchObject([{ msg: 'gateway: session failed', phase: 'authenticating the request' }]);
    fault = null;
    expect((await run(entryOn(made), 'j', ['sh', '-c', 'exit 4'])).exitCode).toBe(4);
  });

  it('ends an open exec with an exit frame saying the command was not run when its audit line cannot be written', async () => {
    const made = register('j');
    fault = 'audit-start';
    const session = await openExec(entryOn(made), 'j', { op: 'exec', command: ['true'], stdin: false });
    await expect(session.exitCode).rejects.toThrow(
      /^the worker failed while auditing the start \(events\.log: EIO\): the command was not run; try again/,
    );
    expect(logged).toMatchObject([{ phase: 'auditing the start' }]);
  });

  it('ends an exec whose stream breaks the session with an exit frame, and still audits its end', async () => {
    const made = register('j');
    // An engine's exec that resolves without the streams the contract promises.
    jobs.set('j', {
      ...made.job,
      target: {
        ...made.job.target,
        execStream: async () => ({}) as Awaited<ReturnType<GatewayJob['target']['execStream']>>,
      },
    });
    const session = await openExec(entryOn(made), 'j', { op: 'exec', command: ['true'], stdin: false });
    await expect(session.exitCode).rejects.toThrow(
      /^the worker failed while running the exec \(.+\): the command may still be running in the job, and its exit code is lost/,
    );
    await expect.poll(() => audit.at(-1)?.end ?? '').toMatch(/the worker failed while running the exec/);
  });

  it('still gives the exit code when the audit of the end fails, and logs it', async () => {
    const made = register('j');
    fault = 'audit-end';
    expect((await run(entryOn(made), 'j', ['sh', '-c', 'exit 6'])).exitCode).toBe(6);
    await expect.poll(() => logged.map((l) => l.phase)).toEqual(['auditing the end']);
  });

  it('refuses a forward whose audit line cannot be written, saying so', async () => {
    const made = register('j');
    fault = 'audit-start';
    await expect(openForward(entryOn(made), 'j', 9)).rejects.toThrow(
      /failed: the worker failed while auditing the start \(events\.log: EIO\): the session did not open/,
    );
  });
});

describe('a broken peer ends its own connection, never the process', () => {
  /** A TCP server whose every connection is a FramedSocket with this frame handler. */
  const framedServer = async (
    onFrame: (frame: Frame, connection: FramedSocket) => void,
    onClose: (error: Error | null) => void = () => undefined,
  ) => {
    const tcp = createTcpServer((socket) => {
      const connection: FramedSocket = new FramedSocket(socket, {
        onFrame: (frame) => onFrame(frame, connection),
        onClose,
      });
    });
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    return { tcp, port: (tcp.address() as AddressInfo).port };
  };

  it('closes a connection whose frame handler throws, naming the frame, instead of throwing out of the socket', async () => {
    let closedWith: Error | null | undefined;
    const { tcp, port } = await framedServer(
      () => {
        throw new Error('handler bug');
      },
      (error) => {
        closedWith = error;
      },
    );
    const client = connectTcp({ host: '127.0.0.1', port });
    client.on('error', () => undefined);
    client.write(encodeFrame(FRAME.stdin, 'x'));
    await expect.poll(() => closedWith).toBeInstanceOf(Error);
    expect(closedWith?.message).toBe('handling a gateway frame of type 0x10 failed: handler bug');
    client.destroy();
    tcp.close();
  });

  it('gives the exit code and ignores what a broken worker sends after the exit frame', async () => {
    const secret = randomToken();
    let workerSideClosed: () => void = () => undefined;
    const closed = new Promise<void>((resolve) => {
      workerSideClosed = resolve;
    });
    const { tcp, port } = await framedServer(
      (frame, connection) => {
        if (frame.type === FRAME.hello) {
          const hello = parseHello(parseJsonPayload(frame, 'hello'));
          const serverNonce = randomToken();
          connection.sendJson(FRAME.challenge, {
            serverNonce,
            proof: workerProof(secret, hello, serverNonce),
          });
        } else if (frame.type === FRAME.auth) {
          connection.sendJson(FRAME.ready, {});
          connection.sendJson(FRAME.exit, { exitCode: 3 });
          connection.send(FRAME.stdout, 'after the end');
          connection.end();
        }
      },
      () => workerSideClosed(),
    );
    const session = await openExec(
      { host: '127.0.0.1', port, tls: false, attempt: 1, workerId: 'w', secret },
      'j',
      { op: 'exec', command: ['true'], stdin: false },
    );
    const [stdout, exitCode] = await Promise.all([text(session.stdout), session.exitCode]);
    expect({ stdout, exitCode }).toEqual({ stdout: '', exitCode: 3 });
    // Once the connection is gone the client has read every frame: the stray one was no write
    // after end() (an unhandled 'error', which vitest reports).
    await closed;
    tcp.close();
  });
});
