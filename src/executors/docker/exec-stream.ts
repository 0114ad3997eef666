import type { Duplex } from 'node:stream';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type Dockerode from 'dockerode';
import { coerceError, PhaseError } from '../../jobs/errors.js';
import type { ExecStream, ExecStreamRequest } from '../executor.js';
import { DockerDemux } from './attach/demux.js';
import { isAlreadyInState } from './errors.js';
import { execStartExitCode, StartFailureFilter } from './exec-start-failure.js';

/** How often to ask whether an exec finished after its stream ended (the engine lags a little). */
const EXEC_POLL_MS = 20;
const EXEC_POLL_LIMIT = 500;

/** Why a finished exec has no exit code to give. */
async function exitCodeOf(exec: Dockerode.Exec, command: string[]): Promise<number> {
  for (let i = 0; i < EXEC_POLL_LIMIT; i++) {
    const info = await exec.inspect();
    if (!info.Running && info.ExitCode !== null) return info.ExitCode;
    await sleep(EXEC_POLL_MS);
  }
  throw new PhaseError(
    'exec',
    `${JSON.stringify(command)}: output ended but the engine never reported an exit code`,
  );
}

/**
 * Resizes an exec's terminal. Podman 4.3 answers 201 where Docker answers 200, and dockerode
 * takes any code it does not list for a failure: the resize was done all the same.
 */
async function resizeExec(exec: Dockerode.Exec, size: { cols: number; rows: number }): Promise<void> {
  try {
    await exec.resize({ h: size.rows, w: size.cols });
  } catch (error) {
    const created =
      typeof error === 'object' && error !== null && 'statusCode' in error && error.statusCode === 201;
    if (!created) throw error;
  }
}

/**
 * Runs a command in a running container with its streams live (the gateway's exec): stdin,
 * stdout and stderr apart (one terminal stream with a tty), resizes, and the exit code once the
 * output has drained. Docker's and Podman's engine API alike.
 */
export async function dockerExecStream(
  container: Dockerode.Container,
  request: ExecStreamRequest,
): Promise<ExecStream> {
  const tty = request.tty !== undefined;
  let exec: Dockerode.Exec;
  try {
    exec = await container.exec({
      Cmd: request.command,
      AttachStdin: request.stdin,
      AttachStdout: true,
      AttachStderr: true,
      Tty: tty,
      User: request.user ?? '',
      ...(request.workdir ? { WorkingDir: request.workdir } : {}),
      Env: Object.entries(request.env ?? {}).map(([name, value]) => `${name}=${value}`),
      ...(request.tty ? { ConsoleSize: [request.tty.rows, request.tty.cols] } : {}),
    });
  } catch (error) {
    const reason = isAlreadyInState(error) ? 'the container is not running' : coerceError(error).message;
    throw new PhaseError('exec', `cannot run ${JSON.stringify(request.command)}: ${reason}`, {
      cause: error,
    });
  }
  const stream = (await exec.start({
    hijack: true,
    stdin: request.stdin,
    Tty: tty,
    // Podman sizes the terminal from `h` and `w` at start (its ExecStartConfig), before the
    // command runs; Docker (API 1.42+) from ConsoleSize; others ignore both.
    ...(request.tty
      ? { h: request.tty.rows, w: request.tty.cols, ConsoleSize: [request.tty.rows, request.tty.cols] }
      : {}),
  })) as Duplex;
  // Engines before API 1.42 ignore ConsoleSize: size the terminal at once, as docker's CLI does.
  if (request.tty) await resizeExec(exec, request.tty).catch(() => undefined);
  stream.on('error', () => undefined); // the output's end (below) reports what matters
  const stdout = new PassThrough();
  const stderr = tty ? null : new PassThrough();
  // The engine's own "could not start" message comes on stdout: kept apart, it goes to stderr
  // (the terminal with a tty) and sets the exit code a shell would give.
  const filter = new StartFailureFilter();
  filter.pipe(stdout, { end: false });
  const drained = new Promise<void>((resolve, reject) => {
    filter.once('end', () => {
      const said = filter.failure?.replace(/\s+$/, '');
      if (said) (stderr ?? stdout).write(`${said}\n`);
      stdout.end();
      stderr?.end();
      resolve();
    });
    if (stderr) {
      const demux = new DockerDemux(filter, stderr);
      stream.pipe(demux);
      demux.once('finish', () => filter.end());
      demux.once('error', reject);
    } else {
      stream.pipe(filter);
    }
  });
  if (!request.stdin) stream.end();
  return {
    stdin: request.stdin ? stream : null,
    stdout,
    stderr,
    resize: async (size) => {
      if (tty) await resizeExec(exec, size);
    },
    exitCode: drained
      .then(() => exitCodeOf(exec, request.command))
      .then((code) => execStartExitCode(code, filter.failure)),
  };
}
