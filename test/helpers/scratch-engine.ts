import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';

const execFileAsync = promisify(execFile);
const ip = (...args: string[]) => execFileAsync('ip', args);

/**
 * A daemon's own bridge: `--bridge=none` would delete the host's docker0 at start. Daemon 0 is
 * the scratch engine; 1… are the many-hosts rig's "hosts", each on its own bridge and subnet.
 */
const bridgeOf = (index: number) => ({
  name: index === 0 ? 'stv-scratch0' : `stv-host${index}`,
  address: index === 0 ? '10.213.77.1/24' : `10.213.${100 + index}.1/24`,
});

/**
 * A second, private Docker daemon (its own data root, socket, containerd and bridge; no
 * iptables) that a test may stop and restart without touching the engine every other test uses.
 */
export class ScratchEngine {
  readonly docker: Dockerode;
  private daemon: ChildProcess | undefined;
  private output = '';

  private readonly bridge: { name: string; address: string };

  private constructor(
    readonly dir: string,
    index: number,
  ) {
    this.docker = new Dockerode({ socketPath: this.socketPath });
    this.bridge = bridgeOf(index);
  }

  /** The daemon's socket, for a worker process's DOCKER_HOST. */
  get socketPath(): string {
    return join(this.dir, 'docker.sock');
  }

  /** `index` 0 is the scratch engine; the rig's hosts take 1, 2, … so their bridges differ. */
  static async start(options: { liveRestore: boolean; index?: number }): Promise<ScratchEngine> {
    const index = options.index ?? 0;
    const engine = new ScratchEngine(await mkdtemp(join(tmpdir(), 'stevedore-scratch-engine-')), index);
    const { name, address } = engine.bridge;
    await ip('link', 'add', 'name', name, 'type', 'bridge').catch(() => undefined); // left by a crashed run
    await ip('addr', 'replace', address, 'dev', name);
    await ip('link', 'set', name, 'up');
    await engine.boot(options.liveRestore);
    return engine;
  }

  /** Starts the daemon again on the same data root, after stop() or kill(). */
  async revive(options: { liveRestore: boolean }): Promise<void> {
    await this.boot(options.liveRestore);
  }

  /**
   * Kills the daemon as a host's death does: dockerd, its containerd, every shim and every job
   * process, frozen first (SIGSTOP) so none of them sees another die, then SIGKILLed together.
   */
  async kill(): Promise<void> {
    const daemon = this.daemon;
    this.daemon = undefined;
    const pids = await processesOf(join(this.dir, 'exec'), daemon?.pid);
    for (const pid of pids) signal(pid, 'SIGSTOP');
    for (const pid of pids) signal(pid, 'SIGKILL');
    if (daemon && daemon.exitCode === null && daemon.signalCode === null) await once(daemon, 'exit');
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
    await ip('link', 'delete', this.bridge.name).catch(() => undefined);
  }

  private async boot(liveRestore: boolean): Promise<void> {
    const d = this.dir;
    const args = [
      `--data-root=${join(d, 'data')}`,
      `--exec-root=${join(d, 'exec')}`,
      `--pidfile=${join(d, 'docker.pid')}`,
      `--host=unix://${join(d, 'docker.sock')}`,
      `--bridge=${this.bridge.name}`,
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

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Gone already: a job process that ended on its own.
  }
}

/**
 * The daemon's pid, the processes whose command line names its exec root (its containerd and
 * the shims), and every descendant of those (the job processes).
 */
async function processesOf(execRoot: string, daemonPid: number | undefined): Promise<number[]> {
  const children = new Map<number, number[]>();
  const roots = new Set<number>(daemonPid === undefined ? [] : [daemonPid]);
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const [cmdline, stat] = await Promise.all([
      readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => ''),
      readFile(`/proc/${pid}/stat`, 'utf8').catch(() => ''),
    ]);
    if (cmdline.includes(execRoot)) roots.add(pid);
    // stat: "pid (comm) state ppid …"; comm may hold spaces, so read after its closing paren.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (Number.isInteger(ppid)) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  }
  const all = new Set<number>();
  const walk = (pid: number): void => {
    if (all.has(pid)) return;
    all.add(pid);
    for (const child of children.get(pid) ?? []) walk(child);
  };
  for (const pid of roots) walk(pid);
  return [...all];
}
