import type { Readable } from 'node:stream';
import type { FramedSocket } from '../jobs/gateway/framed-socket.js';
import { FRAME, type Frame, parseJsonPayload } from '../jobs/gateway/frames.js';
import type { ExecRequest, Exit } from '../jobs/gateway/handshake.js';
import { parseResize } from '../jobs/gateway/messages.js';
import type { ExecStream, GatewayJob } from './target.js';

/**
 * Copies a stream into frames, pausing it while the client's socket is full. Once the client is
 * gone the output is read and dropped: a command left writing into a full pipe would hang for ever.
 */
function relay(
  from: Readable,
  type: typeof FRAME.stdout | typeof FRAME.stderr,
  to: FramedSocket,
  clientGone: Promise<void>,
): Promise<void> {
  return new Promise((resolve) => {
    let gone = false;
    from.on('data', (chunk: Buffer) => {
      if (gone) return;
      if (!to.send(type, chunk)) {
        from.pause();
        to.socket.once('drain', () => from.resume());
      }
    });
    from.once('end', resolve);
    from.once('close', resolve);
    // on, not once: a second 'error' with no listener would end the worker.
    from.on('error', () => resolve());
    void clientGone.then(() => {
      gone = true;
      from.resume();
    });
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
  /** Settles when the client's connection has closed, for whatever reason. */
  clientGone: Promise<void>,
): Promise<Exit> {
  // The client sends stdin as soon as it has `ready`, and an engine may take a while to start the
  // command (Podman: ~200 ms): what comes meanwhile is kept, and the socket paused, until the
  // command can take it. Dropped, a short stdin and its end were lost and `cat` waited for ever.
  const early: Frame[] = [];
  setOnFrame((frame) => early.push(frame));
  connection.socket.pause();
  let exec: ExecStream;
  try {
    exec = await job.target.execStream(request);
  } catch (error) {
    // A start that failed because the job was ending (Apptainer: its process gone from /proc;
    // Podman: the container no longer running) is the job's end, as the client of a command killed
    // with its container is told. The container may take a moment to be gone: asked as a command
    // killed by a signal would be (up to 2 s), a cost only a failed start pays.
    const exit: Exit = (await containerEnded(job, SIGNALLED))
      ? jobEndedExit(job, 'before the command could start', 'it did not run')
      : { exitCode: null, reason: 'error', message: errorText(error) };
    connection.sendJson(FRAME.exit, exit);
    connection.end();
    return exit;
  }
  const stdin = exec.stdin;
  stdin?.on('error', () => undefined); // the command may exit before reading it all: EPIPE is no news
  const onFrame = (frame: Frame): void => {
    // Not paused when the command reads slowly: a paused socket hears no pongs, and the session
    // would end as a silent peer (framed-socket.ts); what waits is held here instead.
    if (frame.type === FRAME.stdin && stdin && !stdin.writableEnded) stdin.write(frame.payload);
    else if (frame.type === FRAME.stdinEnd) stdin?.end();
    else if (frame.type === FRAME.resize) resize(exec, frame);
  };
  setOnFrame(onFrame);
  for (const frame of early.splice(0)) onFrame(frame);
  connection.socket.resume();
  const output = Promise.all([
    relay(exec.stdout, FRAME.stdout, connection, clientGone),
    exec.stderr ? relay(exec.stderr, FRAME.stderr, connection, clientGone) : Promise.resolve(),
  ]);
  // Awaited only once the command exits: a stream that broke the relay (a runtime that broke the
  // contract) is the session's failure through exitCode, never an unhandled rejection meanwhile.
  output.catch(() => undefined);
  const jobEnded = jobEndedExit(
    job,
    'while the command ran',
    "the command's streams are closed and it has no exit code of its own",
  );
  const ended = new Promise<Exit>((resolve) => {
    if (job.ended.aborted) resolve(jobEnded);
    else job.ended.addEventListener('abort', () => resolve(jobEnded), { once: true });
  });
  const exited = exec.exitCode.then(
    async (exitCode): Promise<Exit> => {
      await output;
      // The container's end kills what runs in it: that exit code is the job's end, not the command's.
      if (await containerEnded(job, exitCode)) return jobEnded;
      return { exitCode };
    },
    // An engine may lose the exec with its container (Podman: its inspect fails once the container
    // stopped): that too is the job's end, when the container is gone.
    async (error: unknown): Promise<Exit> =>
      (await containerEnded(job, SIGNALLED, LOST_EXEC_WAIT_MS))
        ? jobEnded
        : { exitCode: null, reason: 'error', message: errorText(error) },
  );
  // No engine can kill an exec (Docker's API has no call for it): a command whose client went away
  // gets end of file on stdin and runs on, its output read and dropped, until it or the job ends.
  const gone = clientGone.then(
    (): Exit => ({
      exitCode: null,
      reason: 'error',
      message: `the client went away while the command ran: its stdin was closed and its output is dropped; the command itself runs on until it ends or job ${job.jobId} does`,
    }),
  );
  const exit = await Promise.race([exited, ended, gone]);
  if (exit.exitCode === null) exec.stdin?.destroy();
  connection.sendJson(FRAME.exit, exit);
  connection.end();
  return exit;
}

/** How a session whose job ended ends: no exit code of the command's, and the job's reason when it gave one. */
const jobEndedExit = (job: GatewayJob, when: string, outcome: string): Exit => ({
  exitCode: null,
  reason: 'job-ended',
  message: `job ${job.jobId} ended ${when}${typeof job.ended.reason === 'string' ? ` (${job.ended.reason})` : ''}: ${outcome}`,
});

/** An exit code as a signal gives it (128 + N): what an exec lost with its container is treated as. */
const SIGNALLED = 128;

/** How long a command killed by a signal waits to learn whether its container is ending too. */
const CONTAINER_END_WAIT_MS = 2_000;
/**
 * The same for an exec the engine lost: Podman fails the exec as soon as its container begins
 * to stop, which may be seconds before a stop with a grace ends it (seen: 'error', not 'job-ended').
 */
const LOST_EXEC_WAIT_MS = 15_000;
const CONTAINER_END_POLL_MS = 100;

/**
 * Whether the command ended because its container did. The engine may report the exec's end (its
 * process killed with the container's) before the container's own: a command killed by a signal
 * asks a little longer, so a stopped job is told as such, not as exit 137.
 */
async function containerEnded(
  job: GatewayJob,
  exitCode: number,
  waitMs = CONTAINER_END_WAIT_MS,
): Promise<boolean> {
  const deadline = Date.now() + (exitCode >= 128 ? waitMs : 0);
  for (;;) {
    if (job.ended.aborted || (await job.target.pid().catch(() => 0)) === 0) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, CONTAINER_END_POLL_MS));
  }
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
