import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';

const execFileAsync = promisify(execFile);
const ip = (...args: string[]) => execFileAsync('ip', args);

/** The scratch daemon's own bridge: `--bridge=none` would delete the host's docker0 at start. */
const BRIDGE = 'stv-scratch0';
const BRIDGE_ADDRESS = '10.213.77.1/24';

/**
 * A second, private Docker daemon (its own data root, socket, containerd and bridge; no
 * iptables) that a test may stop and restart without touching the engine every other test uses.
 */
export class ScratchEngine {
  readonly docker: Dockerode;
  private daemon: ChildProcess | undefined;
  private output = '';

  private constructor(private readonly dir: string) {
    this.docker = new Dockerode({ socketPath: join(dir, 'docker.sock') });
  }

  static async start(options: { liveRestore: boolean }): Promise<ScratchEngine> {
    await ip('link', 'add', 'name', BRIDGE, 'type', 'bridge').catch(() => undefined); // left by a crashed run
    await ip('addr', 'replace', BRIDGE_ADDRESS, 'dev', BRIDGE);
    await ip('link', 'set', BRIDGE, 'up');
    const engine = new ScratchEngine(await mkdtemp(join(tmpdir(), 'stevedore-scratch-engine-')));
    await engine.boot(options.liveRestore);
    return engine;
  }

  /** Stops the daemon the way an operator does (SIGTERM) and starts it again. */
  async restart(options: { liveRestore: boolean }): Promise<void> {
    await this.stop();
    await this.boot(options.liveRestore);
  }

  /** Stops the daemon (SIGTERM) and leaves it stopped: an engine that is away. */
  async halt(): Promise<void> {
    await this.stop();
  }

  /** Starts a halted daemon again on the same data and socket. */
  async resume(options: { liveRestore: boolean }): Promise<void> {
    await this.boot(options.liveRestore);
  }

  /** Removes every container, stops the daemon and deletes its data. */
  async close(): Promise<void> {
    if (this.daemon) {
      const all = await this.docker.listContainers({ all: true }).catch(() => []);
      await Promise.all(
        all.map((c) =>
          this.docker
            .getContainer(c.Id)
            .remove({ force: true })
            .catch(() => undefined),
        ),
      );
      await this.stop();
    }
    // A daemon stopped with live-restore leaves its data root (and container layers) mounted.
    const mounts = (await readFile('/proc/self/mounts', 'utf8'))
      .split('\n')
      .map((line) => line.split(' ')[1] ?? '')
      .filter((path) => path.startsWith(this.dir))
      .sort((a, b) => b.length - a.length);
    for (const path of mounts) await execFileAsync('umount', ['-l', path]).catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true, maxRetries: 3 });
    await ip('link', 'delete', BRIDGE).catch(() => undefined);
  }

  private async boot(liveRestore: boolean): Promise<void> {
    const d = this.dir;
    const args = [
      `--data-root=${join(d, 'data')}`,
      `--exec-root=${join(d, 'exec')}`,
      `--pidfile=${join(d, 'docker.pid')}`,
      `--host=unix://${join(d, 'docker.sock')}`,
      `--bridge=${BRIDGE}`,
      '--iptables=false',
      '--ip-masq=false',
      ...(liveRestore ? ['--live-restore'] : []),
    ];
    const daemon = spawn('dockerd', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.daemon = daemon;
    const keep = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString()).slice(-4_000);
    };
    daemon.stdout?.on('data', keep);
    daemon.stderr?.on('data', keep);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (daemon.exitCode !== null) throw new Error(`scratch dockerd exited at start:\n${this.output}`);
      if (
        await this.docker.ping().then(
          () => true,
          () => false,
        )
      )
        return;
      if (Date.now() > deadline) throw new Error(`scratch dockerd did not answer in 30 s:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private async stop(): Promise<void> {
    const daemon = this.daemon;
    this.daemon = undefined;
    if (!daemon || daemon.exitCode !== null) return;
    const exited = once(daemon, 'exit');
    daemon.kill('SIGTERM');
    await exited;
  }
}
