import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, closeSync, constants, openSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { get } from 'node:http';
import { delimiter, dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { EngineInfo } from '../docker/index.js';

/** A first start sets up Podman's storage and network; on these machines it answers in 1–2 s. */
const SERVICE_START_TIMEOUT_MS = 30_000;
const PING_POLL_MS = 50;
/** One ping; the service answers in milliseconds when it runs. */
const PING_TIMEOUT_MS = 2_000;
/**
 * libpod/info is no ping: it counts containers and images and reads storage. Here it takes
 * 0.7-0.9 s on an idle service, 3.6 s when five are asked at once, and over 2 s while jobs start
 * (seen: a worker starting beside running jobs failed on a 2 s limit).
 */
const LIBPOD_INFO_TIMEOUT_MS = 30_000;
/** How long a stopped service gets to exit after SIGTERM before SIGKILL. */
const SERVICE_STOP_GRACE_MS = 10_000;
/** Lines of the service's stderr (its log file) quoted in the error when it does not come up. */
const STDERR_TAIL_LINES = 5;

/** Where findPodman() looks when the caller names no search path (Debian's default PATH). */
export const DEFAULT_SEARCH_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The first of `candidates` that is an executable file, or null. */
export function firstExecutable(candidates: readonly string[]): string | null {
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** The podman program: `named` (a path, or a name looked up on `path`). Null when there is none. */
export function findPodman(named = 'podman', path = DEFAULT_SEARCH_PATH): string | null {
  return firstExecutable(
    named.includes('/') ? [named] : path.split(delimiter).map((dir) => join(dir, named)),
  );
}

/** Resolves when GET /_ping on the socket answers 200; rejects with the socket's error otherwise. */
export function pingSocket(socket: string, timeoutMs = PING_TIMEOUT_MS): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = get({ socketPath: socket, path: '/_ping', timeout: timeoutMs }, (response) => {
      response.resume();
      if (response.statusCode === 200) resolve();
      else reject(new Error(`/_ping answered HTTP ${response.statusCode}`));
    });
    request.on('timeout', () => request.destroy(new Error(`/_ping did not answer within ${timeoutMs} ms`)));
    request.on('error', reject);
  });
}

/** The fields of libpod's own /info that are read (Podman 4.3). */
export interface LibpodInfoFields {
  host?: {
    hostname?: unknown;
    cgroupVersion?: unknown;
    cgroupManager?: unknown;
    security?: { rootless?: unknown };
  };
  store?: { graphRoot?: unknown };
}

const text = (value: unknown): string => (typeof value === 'string' ? value : '');

/**
 * libpod's /info as the runtime keeps it: whether the service is rootless (the refusal at open),
 * and the host name, graph root and cgroup layout that Podman's Docker-compatible /info fills from
 * this same answer (`Name`, `DockerRootDir`, `CgroupVersion` without its "v", `CgroupDriver` from
 * the engine's cgroup manager; pkg/api/handlers/compat/info.go), so engineId() is the same string.
 */
export function engineInfoOfLibpod(info: LibpodInfoFields): EngineInfo {
  return {
    hostName: text(info.host?.hostname),
    dataRoot: text(info.store?.graphRoot),
    cgroups: {
      version: info.host?.cgroupVersion === 'v2' ? 2 : 1,
      driver: text(info.host?.cgroupManager) || 'cgroupfs',
    },
    rootless: info.host?.security?.rootless === true,
  };
}

/** GET /v4.0.0/libpod/info on the socket: the one /info call a Podman runtime makes. */
export function libpodInfo(socket: string, timeoutMs = LIBPOD_INFO_TIMEOUT_MS): Promise<EngineInfo> {
  return new Promise((resolve, reject) => {
    const request = get(
      { socketPath: socket, path: '/v4.0.0/libpod/info', timeout: timeoutMs },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (text: string) => {
          body += text;
        });
        response.on('end', () => {
          try {
            resolve(engineInfoOfLibpod(JSON.parse(body) as LibpodInfoFields));
          } catch (error) {
            reject(
              new Error(`libpod/info answered HTTP ${response.statusCode} with no JSON`, { cause: error }),
            );
          }
        });
      },
    );
    request.on('timeout', () =>
      request.destroy(new Error(`libpod/info did not answer within ${timeoutMs} ms`)),
    );
    request.on('error', reject);
  });
}

/**
 * A `podman system service` the worker started because nobody served the socket: its child,
 * stopped when the worker's runtime closes.
 */
export class PodmanService {
  private exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    readonly socket: string,
  ) {
    this.exited = new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve()); // never ran: there is nothing to wait for
    });
  }

  /**
   * Starts the service on `socket` and waits until it answers /_ping. Rejects, saying what failed
   * and what to do, when it exits or stays silent.
   */
  static async start(binary: string, socket: string, log: Logger): Promise<PodmanService> {
    await mkdir(dirname(socket), { recursive: true, mode: 0o700 });
    const args = ['system', 'service', '--time=0', `unix://${socket}`];
    // Its stderr goes to a file, not a pipe to the worker: a worker that is SIGKILLed leaves the
    // service serving its jobs' containers for the next worker, and a Go program writing to a pipe
    // nobody reads dies of SIGPIPE, taking the socket with it.
    const logPath = `${socket}.log`;
    const logFd = openSync(logPath, 'a', 0o600);
    const child = spawn(binary, args, { stdio: ['ignore', 'ignore', logFd] });
    closeSync(logFd);
    // Beside the once() listeners below: a later error (a failed kill) is logged, never unhandled.
    child.on('error', (error) => log.warn({ err: error, socket }, 'podman service process error'));
    const service = new PodmanService(child, socket);
    const stderrTail = async (): Promise<string[]> =>
      (await readFile(logPath, 'utf8').catch(() => ''))
        .split('\n')
        .filter((l) => l.trim() !== '')
        .slice(-STDERR_TAIL_LINES);
    const failed = new Promise<string>((resolve) => {
      child.once('error', (error) => resolve(`cannot run ${binary}: ${error.message}`));
      child.once('exit', (code, signal) => resolve(`it exited (${signal ?? `code ${code}`})`));
    });
    const command = `${binary} ${args.join(' ')}`;
    const deadline = Date.now() + SERVICE_START_TIMEOUT_MS;
    for (;;) {
      const outcome = await Promise.race([
        pingSocket(socket).then(
          () => 'up',
          () => 'not yet',
        ),
        failed,
      ]);
      if (outcome === 'up') break;
      const why =
        outcome !== 'not yet'
          ? outcome
          : Date.now() > deadline
            ? `it did not answer /_ping within ${SERVICE_START_TIMEOUT_MS / 1000} s`
            : null;
      if (why !== null) {
        await service.stop();
        const stderr = await stderrTail();
        const said = stderr.length > 0 ? `; it said: ${stderr.join(' | ')}` : '';
        throw new Error(
          `started \`${command}\` because nothing served the socket, but ${why}${said}: run that command yourself to see why, or set STEVEDORE_PODMAN_SOCKET to a running service`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, PING_POLL_MS));
    }
    log.info({ socket, pid: child.pid, log: logPath }, 'started podman system service');
    return service;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** SIGTERM, then SIGKILL after SERVICE_STOP_GRACE_MS; resolves once it exited. Idempotent. */
  async stop(): Promise<void> {
    if (this.child.pid === undefined || this.child.exitCode !== null || this.child.signalCode !== null) {
      return;
    }
    this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), SERVICE_STOP_GRACE_MS);
    });
    if (await Promise.race([this.exited.then(() => false), late])) this.child.kill('SIGKILL');
    clearTimeout(timer);
    await this.exited;
  }
}
