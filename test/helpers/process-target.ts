import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import type { ExecStream, GatewayJob, GatewaySessionTarget } from '../../src/gateway/target.js';
import { randomToken } from '../../src/jobs/gateway/handshake.js';

/**
 * A gateway target whose "container" is this host: each exec is a real child process. It lets
 * the gateway's own machinery (handshake, framing, keep-alives, endings) be tested fast, apart
 * from any engine; the engines' targets are tested in the integration suite.
 */
export const processTarget = (ip = '127.0.0.1'): GatewaySessionTarget => ({
  ipAddress: async () => ip,
  // The "container" is this host, which runs as long as the test does.
  pid: async () => process.pid,
  execStream: async (request): Promise<ExecStream> => {
    const [program, ...args] = request.command as [string, ...string[]];
    const child = spawn(program, args, {
      cwd: request.workdir,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...request.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const exitCode = new Promise<number>((resolve, reject) => {
      child.once('error', reject);
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
  },
});

/** A job on the test's gateway: `end()` ends its run. */
export function processJob(
  jobId: string,
  options: { attempt?: number; network?: boolean; ip?: string } = {},
) {
  const ended = new AbortController();
  const job: GatewayJob = {
    jobId,
    attempt: options.attempt ?? 1,
    secret: randomToken(),
    target: processTarget(options.ip),
    networkEnabled: options.network ?? true,
    ended: ended.signal,
  };
  return { job, end: () => ended.abort() };
}
