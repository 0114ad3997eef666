import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type Dockerode from 'dockerode';
import { freePort } from '../../src/worker/redis-server.js';

/** Every test docker-registry leaves its pid here while alive; the global teardown checks it. */
export const REGISTRY_PID_DIR = join(tmpdir(), 'stevedore-test-registry-pids');

/** The registry logs "listening on" within a few ms; this only bounds a registry that hangs at start. */
const START_TIMEOUT_MS = 10_000;
/** Tries at a fresh port when another process took the one we picked between freePort() and the bind. */
const BIND_ATTEMPTS = 5;
/** A query no client sends: marks the barrier requests that requests() makes, so they can be left out. */
const SYNC_QUERY = 'stevedore-rig-sync=';
/** Lines of the registry's stderr kept to explain a failed start. */
const SAID_KEPT = 10;

export interface RegistryAuth {
  username: string;
  password: string;
}

/** One line of the registry's access log. */
export interface RegistryRequest {
  method: string;
  uri: string;
  status: number;
}

/** Apache combined format, which distribution 2.x writes to stdout: `… "GET /v2/ HTTP/1.1" 200 2 …`. */
const ACCESS_LINE = /"([A-Z]+) (\S+) HTTP\/[\d.]+" (\d{3}) /;

/**
 * A real registry (Debian's docker-registry, distribution 2.8) on a free loopback port with its
 * storage in a temporary directory; with `auth`, htpasswd (bcrypt) basic auth. The engine treats
 * 127.0.0.0/8 as an insecure registry, so plain HTTP works without engine configuration.
 */
export class TestRegistry {
  private readonly log: RegistryRequest[] = [];
  private readonly waiters = new Set<() => void>();
  private syncs = 0;
  private closed = false;

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    private readonly dir: string,
    readonly auth: RegistryAuth | undefined,
  ) {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const m = ACCESS_LINE.exec(line);
      if (!m) return;
      this.log.push({ method: m[1] as string, uri: m[2] as string, status: Number(m[3]) });
      for (const wake of this.waiters) wake();
    });
  }

  static async start(options: { auth?: RegistryAuth } = {}): Promise<TestRegistry> {
    const dir = await mkdtemp(join(tmpdir(), 'stevedore-test-registry-'));
    try {
      const htpasswd = options.auth ? await writeHtpasswd(dir, options.auth) : undefined;
      for (let attempt = 1; ; attempt++) {
        const port = await freePort();
        const config = join(dir, 'config.yml');
        await writeFile(config, registryConfig(dir, port, htpasswd));
        const started = await spawnRegistry(config, port);
        if ('child' in started) {
          const registry = new TestRegistry(started.child, port, dir, options.auth);
          try {
            await registry.remember();
            await registry.answers();
          } catch (error) {
            await registry.close(); // a registry that is not what we asked for is not left running
            throw error;
          }
          return registry;
        }
        if (!started.bindFailed || attempt >= BIND_ATTEMPTS) throw new Error(started.message);
      }
    } catch (error) {
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
  }

  /** "127.0.0.1:PORT", the registry part of a reference and the `serveraddress` of its credentials. */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** The reference of `name:tag` in this registry. */
  ref(name: string, tag: string): string {
    return `${this.host}/${name}:${tag}`;
  }

  /** dockerode's `authconfig` (X-Registry-Auth) for this registry: its own credentials, or others (e.g. wrong ones). */
  authconfig(auth: RegistryAuth | undefined = this.auth): Dockerode.AuthConfigObject {
    return auth ? { username: auth.username, password: auth.password, serveraddress: this.host } : {};
  }

  /**
   * Every request the registry has answered so far, in the order it logged them. The registry
   * logs a request after sending its answer, so this first makes a request of its own and waits
   * for its line: whatever a client saw answered before is in the log by then.
   */
  async requests(): Promise<RegistryRequest[]> {
    const marker = `${SYNC_QUERY}${++this.syncs}`;
    await fetch(`http://${this.host}/v2/?${marker}`);
    await this.until(() => this.log.some((r) => r.uri.endsWith(marker)));
    return this.log.filter((r) => !r.uri.includes(SYNC_QUERY));
  }

  /**
   * The successful GETs of `name`'s manifests and blobs so far: what pulls fetched. Engine 20.10
   * resolves a tag with a HEAD and then GETs the manifest by digest, so a pull is one manifest GET
   * and one GET per blob (config included) the engine did not have already.
   */
  async fetched(name: string): Promise<{ manifests: string[]; blobs: string[] }> {
    const gets = (await this.requests()).filter((r) => r.method === 'GET' && r.status === 200);
    const under = (kind: string): string[] =>
      gets
        .filter((r) => r.uri.startsWith(`/v2/${name}/${kind}/`))
        .map((r) => r.uri.slice(`/v2/${name}/${kind}/`.length));
    return { manifests: under('manifests'), blobs: under('blobs') };
  }

  /** Kills the registry and removes its storage; safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGKILL');
      await exited;
    }
    await unlink(join(REGISTRY_PID_DIR, String(this.child.pid))).catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true });
  }

  private async remember(): Promise<void> {
    await mkdir(REGISTRY_PID_DIR, { recursive: true });
    await writeFile(join(REGISTRY_PID_DIR, String(this.child.pid)), this.dir);
  }

  /** `GET /v2/` answers 200 when open, 401 with auth: anything else means the config is not what we wrote. */
  private async answers(): Promise<void> {
    const expected = this.auth ? 401 : 200;
    const response = await fetch(`http://${this.host}/v2/`);
    if (response.status !== expected) {
      throw new Error(`test registry at ${this.host}: GET /v2/ answered ${response.status}, not ${expected}`);
    }
  }

  private until(done: () => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!done()) return;
        this.waiters.delete(check);
        this.child.off('exit', gone);
        resolve();
      };
      const gone = (): void => {
        this.waiters.delete(check);
        reject(new Error(`test registry at ${this.host} exited while its log was awaited`));
      };
      this.waiters.add(check);
      this.child.once('exit', gone);
      check();
    });
  }
}

function registryConfig(dir: string, port: number, htpasswd: string | undefined): string {
  // Distribution 2.x configuration: https://distribution.github.io/distribution/about/configuration/
  const auth = htpasswd ? `auth:\n  htpasswd:\n    realm: stevedore-test\n    path: ${htpasswd}\n` : '';
  return `version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: ${join(dir, 'data')}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
${auth}`;
}

/** The registry reads only bcrypt entries (`htpasswd -B`); apache2-utils makes them. */
function writeHtpasswd(dir: string, auth: RegistryAuth): Promise<string> {
  const path = join(dir, 'htpasswd');
  return new Promise((resolve, reject) => {
    execFile('htpasswd', ['-Bbn', auth.username, auth.password], async (error, stdout, stderr) => {
      if ((error as NodeJS.ErrnoException | null)?.code === 'ENOENT') {
        reject(new Error('htpasswd not found on PATH: install it (apt-get install apache2-utils)'));
      } else if (error) {
        reject(new Error(`htpasswd -Bbn ${auth.username} failed: ${stderr.trim() || error.message}`));
      } else {
        await writeFile(path, stdout).then(() => resolve(path), reject);
      }
    });
  });
}

type Spawned = { child: ChildProcess } | { message: string; bindFailed: boolean };

/** Starts `docker-registry serve` and resolves when it says it listens, or with why it did not. */
function spawnRegistry(config: string, port: number): Promise<Spawned> {
  return new Promise((resolve) => {
    const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    const said: string[] = [];
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish({
        message: `docker-registry did not listen within ${START_TIMEOUT_MS} ms: ${tail()}`,
        bindFailed: false,
      });
    }, START_TIMEOUT_MS);
    const tail = (): string => said.slice(-3).join(' | ') || 'it said nothing';
    const finish = (outcome: Spawned): void => {
      clearTimeout(timer);
      child.off('exit', exited);
      child.off('error', failed);
      resolve(outcome);
    };
    const exited = (code: number | null, signal: string | null): void => {
      const bindFailed = said.some((l) => l.includes('address already in use'));
      finish({
        message: `docker-registry on port ${port} exited (${signal ?? code}): ${tail()}`,
        bindFailed,
      });
    };
    const failed = (error: NodeJS.ErrnoException): void => {
      const message =
        error.code === 'ENOENT'
          ? 'docker-registry not found on PATH: install it (apt-get install docker-registry, or run scripts/setup.sh test as root)'
          : `cannot start docker-registry: ${error.message}`;
      finish({ message, bindFailed: false });
    };
    child.once('exit', exited);
    child.once('error', failed);
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
      said.push(/msg="([^"]*)"/.exec(line)?.[1] ?? line);
      if (said.length > SAID_KEPT) said.shift(); // it logs every request: keep only what an error needs
      if (line.includes(`msg="listening on 127.0.0.1:${port}"`)) finish({ child });
    });
  });
}
