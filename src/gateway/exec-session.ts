import type { Readable } from 'node:stream';
import type { FramedSocket } from '../jobs/gateway/framed-socket.js';
import { FRAME, type Frame, parseJsonPayload } from '../jobs/gateway/frames.js';
import type { ExecRequest, Exit } from '../jobs/gateway/handshake.js';
import { parseResize } from '../jobs/gateway/messages.js';
import type { ExecStream, GatewayJob } from './target.js';

/** Copies a stream into frames, pausing it while the client's socket is full. */
function relay(
  from: Readable,
  type: typeof FRAME.stdout | typeof FRAME.stderr,
  to: FramedSocket,
): Promise<void> {
  return new Promise((resolve) => {
    from.on('data', (chunk: Buffer) => {
      if (!to.send(type, chunk)) {
        from.pause();
        to.socket.once('drain', () => from.resume());
      }
    });
    from.once('end', resolve);
    from.once('close', resolve);
    from.once('error', () => resolve());
  });
}

/**
 * Runs one exec over an open session: frames in become stdin and resizes, the command's output
 * becomes frames out, and the last frame is how it ended. The exit frame is always sent while
 * the connection is up: an exit code, the job ending, or the error that stopped it.
 */
export async function runExecSession(
  job: GatewayJob,
  request: ExecRequest,
  connection: FramedSocket,
  setOnFrame: (onFrame: (frame: Frame) => void) => void,
): Promise<Exit> {
  let exec: ExecStream;
  try {
    exec = await job.target.execStream(request);
  } catch (error) {
    const exit: Exit = { exitCode: null, reason: 'error', message: errorText(error) };
    connection.sendJson(FRAME.exit, exit);
    connection.end();
    return exit;
  }
  exec.stdin?.on('error', () => undefined); // the command may exit before reading it all: EPIPE is no news
  setOnFrame((frame) => {
    if (frame.type === FRAME.stdin) exec.stdin?.write(frame.payload);
    else if (frame.type === FRAME.stdinEnd) exec.stdin?.end();
    else if (frame.type === FRAME.resize) resize(exec, frame);
  });
  const output = Promise.all([
    relay(exec.stdout, FRAME.stdout, connection),
    exec.stderr ? relay(exec.stderr, FRAME.stderr, connection) : Promise.resolve(),
  ]);
  const jobEnded: Exit = {
    exitCode: null,
    reason: 'job-ended',
    message: `job ${job.jobId} ended while the command ran${typeof job.ended.reason === 'string' ? ` (${job.ended.reason})` : ''}: the command's streams are closed and it has no exit code of its own`,
  };
  const ended = new Promise<Exit>((resolve) => {
    if (job.ended.aborted) resolve(jobEnded);
    else job.ended.addEventListener('abort', () => resolve(jobEnded), { once: true });
  });
  const exited = exec.exitCode.then(
    async (exitCode): Promise<Exit> => {
      await output;
      // The container's end kills what runs in it: that exit code is the job's end, not the command's.
      if (job.ended.aborted || (await job.target.pid().catch(() => 0)) === 0) return jobEnded;
      return { exitCode };
    },
    (error: unknown): Exit => ({ exitCode: null, reason: 'error', message: errorText(error) }),
  );
  const exit = await Promise.race([exited, ended]);
  if (exit.exitCode === null) exec.stdin?.destroy();
  connection.sendJson(FRAME.exit, exit);
  connection.end();
  return exit;
}

/** A resize the terminal cannot take (a malformed frame, a tty gone) changes nothing: the session goes on. */
function resize(exec: ExecStream, frame: Frame): void {
  try {
    void exec.resize(parseResize(parseJsonPayload(frame, 'resize'))).catch(() => undefined);
  } catch {
    // A malformed resize is ignored rather than ending a shell over a window size.
  }
}

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));
