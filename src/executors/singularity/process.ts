import { type ChildProcess, spawn } from 'node:child_process';
import { readlink, stat } from 'node:fs/promises';
import { constants } from 'node:os';
import { basename } from 'node:path';
import type { Readable } from 'node:stream';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { OutputSink } from '../executor.js';
import type { SingularityCommand } from './args.js';
import type { JobCgroup } from './cgroup.js';

/** Bytes of stderr kept to recognise the runtime's own last words (its FATAL line). */
const STDERR_TAIL_BYTES = 4096;
/**
 * Apptainer says a missing program this way and exits 255 (SingularityCE 3.x exits 127):
 * `FATAL: "x": executable file not found in $PATH`, `FATAL: stat /x: no such file or directory`.
 */
const MISSING_COMMAND =
  /FATAL:\s+("[^"]*": executable file not found in \$PATH|stat [^\n]*: no such file or directory)/;
/** Runs the runtime program inside the job's cgroup from its first instruction: joins, then execs. */
const JOIN_CGROUP =
  'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"';

/** The runtime's own program inside and outside the container (Apptainer's and SingularityCE's names). */
const STARTER_NAMES = new Set(['starter', 'starter-suid']);

/** How the runtime program ended. */
export interface ProcessExit {
  /** The exit code, 128+N for signal N. */
  code: number;
  /** The runtime's message when the command is not in the image (exit 127 then). */
  missingCommand: string | null;
}

/** Forwards into a sink with its backpressure, without ending it (the run owns the sink). */
function into(sink: OutputSink, tail?: { text: string }): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (tail) tail.text = (tail.text + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES);
      const more = sink.writeCopy ? sink.writeCopy(chunk) : sink.write(chunk);
      if (more) callback();
      else sink.once('drain', () => callback());
    },
  });
}

/** The runtime program running one container, in its own process group (and the job's cgroup). */
export class SingularityProcess {
  readonly exit: Promise<ProcessExit>;
  private exitedAt: ProcessExit | null = null;
  private readonly child: ChildProcess;

  constructor(
    program: string,
    command: SingularityCommand,
    private readonly cgroup: JobCgroup | null,
    output: { stdout: OutputSink; stderr: OutputSink; stdin?: Readable },
  ) {
    const procs = cgroup?.procsFiles() ?? [];
    this.child = spawn(
      '/bin/sh',
      ['-c', JOIN_CGROUP, 'sh', String(procs.length), ...procs, program, ...command.args],
      {
        detached: true, // its own process group: a signal to the worker's group does not reach it
        env: command.env,
        stdio: [output.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      },
    );
    const child = this.child;
    const tail = { text: '' };
    const drained = Promise.all([
      pipeline(child.stdout as Readable, into(output.stdout)),
      pipeline(child.stderr as Readable, into(output.stderr, tail)),
    ]);
    if (output.stdin && child.stdin) {
      // A program that exits without reading all of stdin closes the pipe: that is no error of the run.
      pipeline(output.stdin, child.stdin).catch(() => undefined);
    }
    // The exit promise reports a failed spawn; a later error (a failed kill) must not be an
    // unhandled 'error' event: stop() and kill() see the process still running and say so.
    child.on('error', () => undefined);
    const exited = new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) =>
        resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0)),
      );
    });
    this.exit = Promise.all([exited, drained]).then(([code]) => {
      const missing = code === 255 || code === 127 ? (MISSING_COMMAND.exec(tail.text)?.[1] ?? null) : null;
      this.exitedAt = { code: missing ? 127 : code, missingCommand: missing };
      return this.exitedAt;
    });
    this.exit.catch(() => undefined); // its readers await it; a failed spawn is not unhandled meanwhile
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  get running(): boolean {
    return this.exitedAt === null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Processes of the container itself (another PID namespace than the runtime program's), with their executables' ids. */
  private async insiders(): Promise<{ pid: number; exe: string | null }[]> {
    if (!this.cgroup) return [];
    const outside = await readlink(`/proc/${this.pid}/ns/pid`).catch(() => null);
    const found: { pid: number; exe: string | null }[] = [];
    for (const pid of await this.cgroup.pids()) {
      const ns = await readlink(`/proc/${pid}/ns/pid`).catch(() => null);
      if (ns !== null && outside !== null && ns !== outside) {
        found.push({ pid, exe: await fileId(`/proc/${pid}/exe`) });
      }
    }
    return found;
  }

  /**
   * A process of the container that runs the image's programs (the command, or what it started;
   * the runtime's own init and helpers run the runtime's starter); the runtime program's before
   * there is one; 0 when none.
   */
  async containerPid(): Promise<number> {
    if (!this.running) return 0;
    const runtime = await fileId(`/proc/${this.pid}/exe`);
    const inside = await this.insiders();
    return (inside.find((p) => p.exe !== null && p.exe !== runtime) ?? inside[0])?.pid ?? this.pid;
  }

  /**
   * Resolves with null once the command itself runs, with the exit when the program ended first
   * (a missing command), or with 'undetected' when neither happened within `timeoutMs`.
   *
   * The command runs once a process of the cgroup is in the container's PID namespace (not the
   * runtime program's) and runs another file than the runtime's starter. Files are told apart by
   * device and inode, never by path: a path read from /proc/<pid>/exe is the path inside that
   * process's mount namespace, so an image's /usr/bin/dash and the host's (the wrapper shell) have
   * the same path, and a command run by it was never seen to start.
   */
  async commandStarted(timeoutMs: number): Promise<ProcessExit | null | 'undetected'> {
    const cgroup = this.cgroup;
    if (!cgroup) return null;
    const deadline = Date.now() + timeoutMs;
    let starter: string | null = null;
    let outside: string | null = null;
    for (;;) {
      if (this.exitedAt) return this.exitedAt;
      if (Date.now() >= deadline) return 'undetected';
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        // Ended: its exit (once its output is drained), or undetected when a leftover holds the pipes.
        return Promise.race([this.exit, delay(deadline - Date.now()).then(() => 'undetected' as const)]);
      }
      if (starter === null) {
        const own = await readlink(`/proc/${this.pid}/exe`).catch(() => null);
        if (own !== null && STARTER_NAMES.has(basename(own))) {
          starter = await fileId(`/proc/${this.pid}/exe`);
          outside = await readlink(`/proc/${this.pid}/ns/pid`).catch(() => null);
        }
      }
      if (starter !== null && outside !== null) {
        for (const pid of await cgroup.pids()) {
          if (pid === this.pid) continue;
          const ns = await readlink(`/proc/${pid}/ns/pid`).catch(() => null);
          if (ns === null || ns === outside) continue;
          const exe = await fileId(`/proc/${pid}/exe`);
          if (exe !== null && exe !== starter) return null;
        }
      }
      await delay(5);
    }
  }

  /** SIGTERM to the runtime program, which hands it to the container's init (a group signal would deliver it twice). */
  terminate(): void {
    if (this.running) this.child.kill('SIGTERM');
  }

  /** SIGKILL to everything: the process group, and every process in the cgroup (one that left the group too). */
  async kill(): Promise<void> {
    if (!this.running) return;
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
    await this.cgroup?.signalAll('SIGKILL');
  }

  /**
   * SIGTERM, then SIGKILL when it has not ended within graceMs (0: SIGKILL at once). False when
   * the program had already exited, so no signal reached it (its exit code is its own).
   */
  async stop(graceMs: number): Promise<boolean> {
    if (!this.running) return false;
    if (graceMs > 0) {
      this.terminate();
      let timer: NodeJS.Timeout | undefined;
      const ended = await Promise.race([
        this.exit.then(
          () => true,
          () => true,
        ),
        new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), graceMs);
        }),
      ]);
      clearTimeout(timer);
      if (ended) return true;
    }
    await this.kill();
    return true;
  }
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** Device and inode of the file a /proc/<pid>/exe link points to (the same file in every mount namespace). */
async function fileId(path: string): Promise<string | null> {
  const s = await stat(path).catch(() => null);
  return s ? `${s.dev}:${s.ino}` : null;
}
