import { spawn } from 'node:child_process';

/** How long a worker waits for another one that is finding or starting the embedded Redis. */
const LOCK_WAIT_SECONDS = 30;

export interface HeldLock {
  release(): Promise<void>;
}

/**
 * An exclusive flock(2) on `path`, held by a `flock` child process (util-linux) for as long as
 * we keep its stdin open. Node has no flock of its own; the kernel releases the lock when that
 * child ends, so a lock whose holder was SIGKILLed is never left behind (no stale lock files).
 */
export async function lockFile(path: string): Promise<HeldLock> {
  // `cat` ends when our end of its stdin closes: on release(), or when this process dies.
  const child = spawn(
    'flock',
    [
      '--exclusive',
      '--wait',
      String(LOCK_WAIT_SECONDS),
      path,
      'sh',
      '-c',
      'echo locked; exec cat >/dev/null',
    ],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    child.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'ENOENT'
          ? new Error('flock not found on PATH: install util-linux, or set REDIS_URL')
          : new Error(`flock could not be started: ${error.message}`),
      ),
    );
    child.stdout.once('data', () => resolve());
    void exited.then((code) =>
      reject(
        new Error(
          code === 1
            ? `${path} is still locked after ${LOCK_WAIT_SECONDS} s: another worker is starting the embedded Redis of this state directory; try again, or find it with: fuser ${path}`
            : `flock on ${path} failed (exit ${code}): ${stderr.trim()}`,
        ),
      ),
    );
  });
  child.stdout.resume();
  return {
    release: async () => {
      child.stdin.end();
      await exited;
    },
  };
}
