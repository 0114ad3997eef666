import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { PhaseError } from '../../jobs/errors.js';
import type { ExecStream, ExecStreamRequest } from '../executor.js';
import { RUNTIME_PATH } from './args.js';
import { nsenterArgs } from './exec.js';

/**
 * Runs a command in the running container with live streams, as `nsenter` into its namespaces,
 * root and working directory (crunch-run's way); the exit code once its output has drained.
 */
export async function nsenterExecStream(pid: number, request: ExecStreamRequest): Promise<ExecStream> {
  if (request.tty) {
    throw new PhaseError(
      'exec',
      'a terminal (-t) is not available on the Apptainer runtime yet; run without -t',
    );
  }
  // nsenter runs on the host as root: a variable meant for the command (LD_PRELOAD, say) would act
  // on it first. Until the variables can be set inside the container, a request with some is refused.
  if (Object.keys(request.env ?? {}).length > 0) {
    throw new PhaseError(
      'exec',
      'variables for an exec (--env) are not available on the Apptainer runtime yet; run without them',
    );
  }
  const args = await nsenterArgs(pid, request.user, request.workdir);
  const child = spawn('nsenter', [...args, '--', ...request.command], {
    env: { PATH: RUNTIME_PATH },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.on('error', () => undefined); // a command that exits before reading: EPIPE is no news
  const exitCode = new Promise<number>((resolve, reject) => {
    child.once('error', (error) =>
      reject(new PhaseError('exec', `nsenter into pid ${pid} failed: ${error.message}`, { cause: error })),
    );
    child.once('close', (code, signal) =>
      resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0)),
    );
  });
  if (!request.stdin) child.stdin.end();
  return {
    stdin: request.stdin ? child.stdin : null,
    stdout: child.stdout,
    stderr: child.stderr,
    resize: async () => undefined,
    exitCode,
  };
}
