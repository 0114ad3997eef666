/**
 * A gateway client in a process of its own, as a user's would be on another host: it takes a
 * job's gateway entry (as read from Redis) and one task as JSON in argv[2], runs it with
 * src/jobs/gateway/session.ts, and prints one JSON line with what happened. Run it with
 * `node --import tsx` (test/integration/gateway.test.ts does, through runGatewayClient).
 */
import { createPrivateKey } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { Agent, get } from 'node:http';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { text } from 'node:stream/consumers';
import type { ExecRequest } from '../../src/jobs/gateway/handshake.js';
import type { Keepalive } from '../../src/jobs/gateway/keepalive.js';
import type { GatewayEntry } from '../../src/jobs/gateway/registration.js';
import { GatewayError, openExec, openForward, type SessionOptions } from '../../src/jobs/gateway/session.js';

export type GatewayTask =
  | {
      kind: 'exec';
      request: ExecRequest;
      /** File whose bytes are the command's stdin (then ended). */
      stdinPath?: string;
      /** File the command's stdout goes to; without it, stdout is in the answer as text. */
      stdoutPath?: string;
      /** Prints `started` on stderr once the session is open (a test waits for it). */
      announce?: boolean;
    }
  | {
      /** A terminal session: sends lines until `first` is in the output, resizes, until `second`, then sends `last`. */
      kind: 'tty';
      request: ExecRequest;
      first: string;
      resize: { cols: number; rows: number };
      second: string;
      last: string;
    }
  | { kind: 'http'; port: number; requests: number; connections: number };

export interface GatewayClientInput {
  entry: GatewayEntry;
  jobId: string;
  task: GatewayTask;
  signingKey?: { id: string; path: string };
  /** The CA (PEM file) of a worker that serves the gateway over TLS. */
  tlsCaPath?: string;
  /** Pings and silent-peer limit of this side (default: the client's). */
  keepalive?: Keepalive;
}

export interface GatewayClientAnswer {
  exitCode?: number;
  error?: { code: string; message: string };
  stdout?: string;
  stderr?: string;
  /** http: each answer's status and body, and the connections the local listener took. */
  answers?: { status: number; body: string }[];
  connections?: number;
}

async function main(): Promise<GatewayClientAnswer> {
  const input = JSON.parse(process.argv[2] as string) as GatewayClientInput;
  const options: SessionOptions = {
    ...(input.signingKey
      ? {
          signingKey: {
            id: input.signingKey.id,
            privateKey: createPrivateKey(await readFile(input.signingKey.path)),
          },
        }
      : {}),
    ...(input.tlsCaPath ? { tls: { ca: await readFile(input.tlsCaPath) } } : {}),
    ...(input.keepalive ? { keepalive: input.keepalive } : {}),
  };
  const { entry, jobId, task } = input;
  if (task.kind === 'http') return http(entry, jobId, task, options);
  const session = await openExec(entry, jobId, task.request, options);
  if (task.kind === 'tty') return tty(session, task);
  if (task.announce) process.stderr.write('started\n');
  if (task.stdinPath) session.stdin.end(await readFile(task.stdinPath));
  else if (task.request.stdin) session.stdin.end();
  const stdout = task.stdoutPath
    ? session.stdout.toArray().then(async (chunks) => {
        await writeFile(task.stdoutPath as string, Buffer.concat(chunks as Buffer[]));
        return undefined;
      })
    : text(session.stdout);
  const [out, stderr, exitCode] = await Promise.all([stdout, text(session.stderr), session.exitCode]);
  return { exitCode, stderr, ...(out === undefined ? {} : { stdout: out }) };
}

async function tty(
  session: Awaited<ReturnType<typeof openExec>>,
  task: Extract<GatewayTask, { kind: 'tty' }>,
): Promise<GatewayClientAnswer> {
  let seen = '';
  let phase: 'first' | 'second' | 'done' = 'first';
  // The terminal's size and the program's input travel apart (the engine's resize call, the
  // terminal's input): the program prints its size for each line, and lines are sent until it
  // shows the size awaited.
  const poke = setInterval(() => session.stdin.write('\n'), 200);
  session.stdout.on('data', (chunk: Buffer) => {
    seen += chunk.toString();
    if (phase === 'first' && seen.includes(task.first)) {
      phase = 'second';
      session.resize(task.resize);
    } else if (phase === 'second' && seen.includes(task.second)) {
      phase = 'done';
      clearInterval(poke);
      session.stdin.write(task.last);
    }
  });
  const exitCode = await session.exitCode.finally(() => clearInterval(poke));
  return { exitCode, stdout: seen };
}

async function http(
  entry: GatewayEntry,
  jobId: string,
  task: Extract<GatewayTask, { kind: 'http' }>,
  options: SessionOptions,
): Promise<GatewayClientAnswer> {
  // A local port whose every connection is one forwarded connection, as `stevedore port-forward` does.
  let connections = 0;
  let refused: GatewayClientAnswer['error'];
  const local = createServer((socket: Socket) => {
    connections += 1;
    socket.on('error', () => undefined);
    openForward(entry, jobId, task.port, options).then(
      (remote) => {
        remote.on('error', () => socket.destroy());
        socket.pipe(remote).pipe(socket);
      },
      (error: unknown) => {
        refused ??=
          error instanceof GatewayError
            ? { code: error.code, message: error.message }
            : { code: 'client', message: error instanceof Error ? error.message : String(error) };
        socket.destroy();
      },
    );
  });
  await new Promise<void>((resolve) => local.listen(0, '127.0.0.1', resolve));
  const port = (local.address() as AddressInfo).port;
  const agent = new Agent({ keepAlive: true, maxSockets: task.connections });
  const one = () =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      get({ host: '127.0.0.1', port, path: '/', agent }, (response) => {
        text(response).then((body) => resolve({ status: response.statusCode ?? 0, body }), reject);
      }).on('error', reject);
    });
  const answers = await Promise.allSettled(Array.from({ length: task.requests }, one));
  agent.destroy();
  local.close();
  // A refused forward is the answer: the HTTP client only saw its connection reset.
  if (refused) return { error: refused, connections };
  return {
    answers: answers.map((a) => (a.status === 'fulfilled' ? a.value : { status: 0, body: String(a.reason) })),
    connections,
  };
}

main().then(
  (answer) => {
    process.stdout.write(`${JSON.stringify(answer)}\n`);
    process.exit(0);
  },
  (error: unknown) => {
    const answer: GatewayClientAnswer = {
      error:
        error instanceof GatewayError
          ? { code: error.code, message: error.message }
          : { code: 'client', message: error instanceof Error ? error.message : String(error) },
    };
    process.stdout.write(`${JSON.stringify(answer)}\n`);
    process.exit(0);
  },
);
