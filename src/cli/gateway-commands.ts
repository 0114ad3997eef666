import { finished } from 'node:stream/promises';
import type { StevedoreClient } from '../jobs/client.js';
import { coerceError } from '../jobs/errors.js';
import type { JobExecOptions } from '../jobs/gateway/client-gateway.js';
import { type ExecSession, GatewayError } from '../jobs/gateway/session.js';
import {
  type GatewayFlags,
  parseExecArgs,
  parseForwardArgs,
  parseShellArgs,
  SHELL_COMMAND,
} from './gateway-args.js';
import { clientFrom } from './options.js';
import { EXEC_HELP, PORT_FORWARD_HELP, SHELL_HELP } from './usage.js';

/**
 * What exec and shell exit with when there is no exit code of the command's to give: the session
 * did not open, or ended without one. 255, as ssh does for its own failures, since a command's
 * code can be anything from 0 to 255 and 255 is the rarest.
 */
export const NO_EXIT_CODE = 255;
/** A terminal's size when the local side is not one (output piped), as a VT100's. */
const DEFAULT_TTY = { cols: 80, rows: 24 };
/** Refusals a port-forward cannot outlive: every later connection would get the same. */
const FINAL_REFUSALS = new Set([
  'not-running',
  'gateway-off',
  'no-network',
  'not-allowed',
  'unsigned',
  'bad-signature',
  'tls',
]);

export async function execCommand(args: string[]): Promise<number> {
  const parsed = parseExecArgs(args);
  if (parsed.help) {
    console.log(EXEC_HELP);
    return 0;
  }
  const env = Object.keys(parsed.env).length > 0 ? parsed.env : undefined;
  return runExec(parsed.flags, parsed.jobId, parsed.command, {
    user: parsed.user,
    workdir: parsed.workdir,
    env,
    stdin: parsed.interactive,
    tty: parsed.tty ? terminalSize() : undefined,
  });
}

export async function shellCommand(args: string[]): Promise<number> {
  const parsed = parseShellArgs(args);
  if (parsed.help) {
    console.log(SHELL_HELP);
    return 0;
  }
  return runExec(parsed.flags, parsed.jobId, [...SHELL_COMMAND], { stdin: true, tty: terminalSize() });
}

async function runExec(
  flags: GatewayFlags,
  jobId: string,
  command: string[],
  options: JobExecOptions,
): Promise<number> {
  const client = await clientFrom(flags, { signing: true });
  try {
    let session: ExecSession;
    try {
      session = await client.exec(jobId, command, options);
    } catch (error) {
      if (!(error instanceof GatewayError)) throw error;
      console.error(`stevedore: exec: ${error.message}`);
      return NO_EXIT_CODE;
    }
    return await attach(session, jobId, options);
  } finally {
    await client.close();
  }
}

function terminalSize(): { cols: number; rows: number } {
  const out = process.stdout;
  return out.isTTY && out.columns > 0 && out.rows > 0 ? { cols: out.columns, rows: out.rows } : DEFAULT_TTY;
}

/** Joins the session to this process's stdin, stdout and stderr (and terminal) until the command ends. */
async function attach(session: ExecSession, jobId: string, options: JobExecOptions): Promise<number> {
  const stdin = process.stdin;
  const raw = options.tty !== undefined && stdin.isTTY;
  const onResize = () => session.resize(terminalSize());
  const onStdinError = (error: Error) => console.error(`stevedore: exec: reading stdin: ${error.message}`);
  // A reader that went away (`| head`) stops our copy, not the session: its exit code still counts.
  const onOutputError = (from: NodeJS.ReadableStream, to: NodeJS.WritableStream) => () => {
    from.unpipe(to);
    from.resume();
  };
  const onStdoutError = onOutputError(session.stdout, process.stdout);
  const onStderrError = onOutputError(session.stderr, process.stderr);
  process.stdout.on('error', onStdoutError);
  process.stderr.on('error', onStderrError);
  session.stdout.pipe(process.stdout, { end: false });
  session.stderr.pipe(process.stderr, { end: false });
  if (options.tty && process.stdout.isTTY) process.stdout.on('resize', onResize);
  if (options.stdin) {
    if (raw) stdin.setRawMode(true);
    stdin.on('error', onStdinError);
    stdin.pipe(session.stdin);
  }
  try {
    const [code] = await Promise.all([
      session.exitCode,
      finished(session.stdout).catch(() => undefined),
      finished(session.stderr).catch(() => undefined),
    ]);
    return code;
  } catch (error) {
    const message = coerceError(error).message;
    const lost = error instanceof GatewayError && error.code === 'lost';
    console.error(`${raw ? '\r\n' : ''}stevedore: exec: ${lost ? message : `no exit code: ${message}`}`);
    if (error instanceof GatewayError && error.code === 'job-ended') {
      console.error(`stevedore: exec: job ${jobId} has ended; its result: stevedore result ${jobId}`);
    }
    return NO_EXIT_CODE;
  } finally {
    process.stdout.off('resize', onResize);
    process.stdout.off('error', onStdoutError);
    process.stderr.off('error', onStderrError);
    if (options.stdin) {
      stdin.unpipe(session.stdin);
      if (raw) stdin.setRawMode(false);
      // Nothing more is read: a stdin left open (a terminal, a pipe) must not keep the process alive.
      stdin.pause();
      stdin.destroy();
    }
  }
}

export async function portForwardCommand(args: string[]): Promise<number> {
  const parsed = parseForwardArgs(args);
  if (parsed.help) {
    console.log(PORT_FORWARD_HELP);
    return 0;
  }
  const client = await clientFrom(parsed.flags, { signing: true });
  try {
    return await forward(client, parsed.jobId, parsed.localPort, parsed.remotePort);
  } finally {
    await client.close();
  }
}

async function forward(
  client: StevedoreClient,
  jobId: string,
  localPort: number,
  remotePort: number,
): Promise<number> {
  let portForward: Awaited<ReturnType<StevedoreClient['portForward']>>;
  try {
    portForward = await client.portForward(jobId, remotePort);
  } catch (error) {
    if (!(error instanceof GatewayError)) throw error;
    console.error(`stevedore: port-forward: ${error.message}`);
    return 1;
  }
  let stop: (code: number) => void = () => undefined;
  const stopped = new Promise<number>((resolve) => {
    stop = resolve;
  });
  const listener = await portForward.listen({
    port: localPort,
    onError: (error, client) => {
      console.error(`stevedore: port-forward: connection from ${client}: ${error.message}`);
      if (error instanceof GatewayError && FINAL_REFUSALS.has(error.code)) stop(1);
    },
  });
  const onSignal = () => stop(0);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // stdout carries the one line a script reads for the port (`:REMOTE` picks a free one).
  console.log(`Forwarding 127.0.0.1:${listener.address.port} -> job ${jobId} port ${remotePort}`);
  try {
    return await stopped;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await listener.close();
  }
}
