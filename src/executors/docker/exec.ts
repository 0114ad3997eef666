import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type Dockerode from 'dockerode';
import { coerceError, PhaseError } from '../../jobs/errors.js';
import type { ExecOptions, ExecResult } from '../executor.js';
import { DockerDemux } from './attach/demux.js';
import { isAlreadyInState } from './errors.js';

/** How often to ask whether an exec finished after its stream ended (the engine lags a little). */
const EXEC_POLL_MS = 20;
const EXEC_POLL_LIMIT = 250;

function collect(stream: PassThrough): () => string {
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return () => Buffer.concat(chunks).toString('utf8');
}

/** Runs a command inside a running container and collects its exit code and output. */
export async function dockerExec(
  container: Dockerode.Container,
  command: string[],
  options: ExecOptions,
): Promise<ExecResult> {
  const hasStdin = options.stdin !== undefined;
  let exec: Dockerode.Exec;
  try {
    exec = await container.exec({
      Cmd: command,
      AttachStdout: true,
      AttachStderr: true,
      AttachStdin: hasStdin,
      Tty: false,
      User: options.user ?? '',
    });
  } catch (error) {
    const reason = isAlreadyInState(error) ? 'the container is not running' : coerceError(error).message;
    throw new PhaseError('exec', `cannot run ${JSON.stringify(command)}: ${reason}`, { cause: error });
  }
  const stream = await exec.start({ hijack: true, stdin: hasStdin, abortSignal: options.signal });
  const out = new PassThrough();
  const err = new PassThrough();
  const stdout = collect(out);
  const stderr = collect(err);
  const done = pipeline(stream, new DockerDemux(out, err));
  if (hasStdin) stream.end(options.stdin);
  await done;
  for (let i = 0; i < EXEC_POLL_LIMIT; i++) {
    const info = await exec.inspect();
    if (!info.Running && info.ExitCode !== null) {
      return { exitCode: info.ExitCode, stdout: stdout(), stderr: stderr() };
    }
    options.signal?.throwIfAborted();
    await new Promise((r) => setTimeout(r, EXEC_POLL_MS));
  }
  throw new PhaseError(
    'exec',
    `${JSON.stringify(command)}: output ended but the engine never reported an exit code`,
  );
}
