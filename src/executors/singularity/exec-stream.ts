import { spawn } from 'node:child_process';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { constants } from 'node:os';
import { Writable } from 'node:stream';
import { coerceError, PhaseError } from '../../jobs/errors.js';
import type { ExecStream, ExecStreamRequest } from '../executor.js';
import { envLines, execChain } from './exec-chain.js';
import { EXEC_ENV_NAME, idsOf, jobIdentity } from './exec-identity.js';
import type { ExecTools } from './exec-tools.js';

/** What an exec needs of the runtime and the job. */
export interface ExecTarget {
  /** The exec tools, or why this host has none (exec is refused with that reason). */
  tools: ExecTools | { unavailable: string };
  /** Whether the worker runs as root: entering a job's namespaces needs it. */
  root: boolean;
  /** A process of the job's image (host pid). */
  pid: number;
  /** The job cgroup's `cgroup.procs` files (empty: no cgroup of its own). */
  cgroupProcs: readonly string[];
}

/** Helper variables of the exec's shell (exec-chain.ts STAGE_B): a request may not set them. */
const RESERVED_PREFIX = '__stevedore_';
/** The most a terminal may measure, as the kernel's winsize holds it (unsigned short). */
const MAX_TERMINAL_SIDE = 65_535;

function terminalSide(value: number, what: string): number {
  const n = Math.trunc(value);
  if (!Number.isFinite(n) || n < 1 || n > MAX_TERMINAL_SIDE)
    throw new PhaseError(
      'exec',
      `the terminal's ${what} ${value} is not a number from 1 to ${MAX_TERMINAL_SIDE}`,
    );
  return n;
}

/** The pseudo-terminal `script` (process `scriptPid`) gave its child, as a /dev/pts path; null until there is one. */
async function terminalOf(scriptPid: number): Promise<string | null> {
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid …: comm may hold spaces and parentheses, so read after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid !== scriptPid) continue;
    const tty = await readlink(`/proc/${entry}/fd/0`).catch(() => '');
    if (/^\/dev\/pts\/\d+$/.test(tty)) return tty;
  }
  return null;
}

/**
 * Runs a command in the running container with live streams and the job's own confinement
 * (exec-chain.ts): its uid (or the requested user), capabilities, no-new-privileges and cgroup;
 * the job's variables and the request's set inside the container; a terminal with `tty`.
 */
export async function confinedExecStream(
  target: ExecTarget,
  request: ExecStreamRequest,
): Promise<ExecStream & { kill(): void }> {
  const { tools } = target;
  if (!target.root) {
    throw new PhaseError(
      'exec',
      'exec into an Apptainer job needs the worker to run as root (it enters the job namespaces)',
    );
  }
  if ('unavailable' in tools)
    throw new PhaseError('exec', `${tools.unavailable}; install them on the worker host`);
  const bad = Object.keys(request.env ?? {}).filter(
    (n) => !EXEC_ENV_NAME.test(n) || n.startsWith(RESERVED_PREFIX),
  );
  if (bad.length > 0) {
    throw new PhaseError(
      'exec',
      `env: ${bad.map((n) => JSON.stringify(n)).join(', ')} cannot be set on the Apptainer runtime (a name of letters, digits and _, not starting with ${RESERVED_PREFIX})`,
    );
  }
  if (request.command.length === 0) throw new PhaseError('exec', 'command: give a program to run');
  const tty = request.tty
    ? { cols: terminalSide(request.tty.cols, 'width'), rows: terminalSide(request.tty.rows, 'height') }
    : undefined;
  const job = await jobIdentity(target.pid);
  const ids = request.user ? await idsOf(target.pid, request.user) : { uid: job.uid, gid: job.gid };
  const { file, args } = execChain({
    tools,
    pid: target.pid,
    cgroupProcs: target.cgroupProcs,
    uid: ids.uid,
    gid: ids.gid,
    inheritable: job.inheritable,
    bounding: job.bounding,
    ambient: job.ambient,
    workdir: request.workdir,
    tty,
    command: request.command,
  });
  const child = spawn(file, args, {
    env: {}, // nothing of the worker's; the command's variables come on fd 8
    detached: true, // its own process group: a signal to the worker's does not reach it
    stdio: ['pipe', 'pipe', 'pipe', 'ignore', 'ignore', 'ignore', 'ignore', 'ignore', 'pipe'],
  });
  const envPipe = Array.from(child.stdio)[8];
  const { stdin, stdout, stderr } = child;
  if (!(envPipe instanceof Writable) || !stdin || !stdout || !stderr) {
    child.kill('SIGKILL');
    throw new PhaseError('exec', `cannot start the exec (${file}): its pipes were not made`);
  }
  envPipe.on('error', () => undefined); // an exec that failed before reading it: its exit says why
  envPipe.end(envLines({ ...job.env, ...(request.env ?? {}) }));
  if (tty) stderr.resume(); // script's own words only: the terminal carries the command's
  stdin.on('error', () => undefined); // a command that exits before reading: EPIPE is no news
  let running = true;
  const exitCode = new Promise<number>((resolve, reject) => {
    child.once('error', (error) =>
      reject(new PhaseError('exec', `cannot start the exec (${file}): ${error.message}`, { cause: error })),
    );
    child.once('close', (code, signal) => {
      running = false;
      resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0));
    });
  });
  // Without -i the command reads end of file at once; a terminal's stays open (an ended input
  // would end the session, as a ^D does), and closes with the command.
  if (!request.stdin && !tty) stdin.end();
  if (!request.stdin && tty) void exitCode.finally(() => stdin.end()).catch(() => undefined);
  let terminal: string | null = null;
  return {
    stdin: request.stdin ? stdin : null,
    stdout,
    stderr: tty ? null : stderr,
    resize: async (size) => {
      if (!tty || !running || child.pid === undefined) return;
      const cols = terminalSide(size.cols, 'width');
      const rows = terminalSide(size.rows, 'height');
      terminal ??= await terminalOf(child.pid);
      if (terminal === null) throw new PhaseError('exec', 'the exec has no terminal yet to resize');
      // The kernel tells the terminal's foreground programs (SIGWINCH); `stty size` inside reads it.
      await new Promise<void>((resolve, reject) => {
        const stty = spawn(
          tools.stty,
          ['-F', terminal as string, 'rows', String(rows), 'cols', String(cols)],
          {
            env: {},
            stdio: 'ignore',
          },
        );
        stty.once('error', (error) =>
          reject(new PhaseError('exec', `resize: ${coerceError(error).message}`)),
        );
        stty.once('close', (code) =>
          code === 0
            ? resolve()
            : reject(new PhaseError('exec', `resize: stty -F ${terminal} exited ${code}`)),
        );
      });
    },
    exitCode,
    kill: () => {
      if (!running || child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL'); // its process group: the host steps and the command
      } catch {
        // ended meanwhile
      }
    },
  };
}
