import { readdir, stat } from 'node:fs/promises';
import type { Duplex, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Dockerode from 'dockerode';
import { type Logger, pino } from 'pino';
import { CommandNotFoundError, InfrastructureError, PhaseError, statusCodeOf } from '../../jobs/errors.js';
import type {
  Adoption,
  ContainerExecutor,
  ExecOptions,
  ExecResult,
  ExecutorSpec,
  ExitDetails,
  FinalUsage,
  Reattachment,
  RuntimeCapabilities,
  StreamCounts,
  UsageSample,
} from '../executor.js';
import { DockerDemux } from './attach/demux.js';
import { attachRaw } from './attach/raw-attach.js';
import { SkipBytes } from './attach/skip-bytes.js';
import { type JobCgroup, JobCgroups, noUsage } from './cgroup.js';
import { type DockerHostFacts, toDockerCreateOptions } from './create-options.js';
import { cleanEngineMessage, isAlreadyInState, isGone, wrapEngineError } from './errors.js';
import { type ContainerWatch, DockerEvents } from './events.js';
import { dockerExec } from './exec.js';
import { forgetImage, loadDockerImage } from './image.js';
import { type NetnsHolder, NetnsHolders } from './netns/holders.js';
import { awaitEngine, liveRestoreEnabled, watchContainer } from './outage.js';
import { dockerUsage } from './usage.js';

const DEFAULT_WATCHDOG_INTERVAL_MS = 2_000;
/** How long the engine may stay unreachable (a daemon restart, say) before the run fails as infra. */
const DEFAULT_ENGINE_OUTAGE_MS = 30_000;
/** How long to wait for the engine's `die` event once wait() answered (normally it is already there). */
const DIE_EVENT_WAIT_MS = 2_000;
/** SIGKILL: the only exit an OOM kill of the container's first process can give. */
const EXIT_SIGKILL = 137;

/** The engine's version, asked once per client rather than once per job. */
const RUNTIME_NAMES = new WeakMap<Dockerode, Promise<string>>();
/** The default client, shared so its connection pool and version cache serve every job. */
let defaultDocker: Dockerode | undefined;

export interface DockerExecutorOptions {
  docker?: Dockerode;
  /** Container name; the engine picks one when absent. */
  name?: string;
  labels?: Record<string, string>;
  logger?: Logger;
  /** How often wait() checks that the daemon still answers. */
  watchdogIntervalMs?: number;
  /** How long the daemon may be unreachable before the run fails (it may come back after a restart). */
  engineOutageMs?: number;
  /** Docker log driver of the container; create-options.ts's DEFAULT_LOG_DRIVER when absent. */
  logDriver?: string;
  /** GPU selection handed down from the worker's configuration. */
  visibleDevices?: { cuda?: string; amd?: string };
  /**
   * A job without network joins a reused, loopback-only namespace (netns-holders.ts) rather than
   * getting one of its own. Default true.
   */
  reuseNetns?: boolean;
  /** Per-job parent cgroups for final usage; one per worker. Made per executor when absent. */
  cgroups?: JobCgroups;
}

interface OutputStreams {
  stdout: Writable;
  stderr: Writable;
}

/** An output stream being followed: its connection, its end, and the bytes it handed out. */
interface OutputFollow {
  socket: Readable | Duplex;
  done: Promise<void>;
  written: { stdout: number; stderr: number };
}

/** Bytes of each stream the outputs hold: the current follow's count, plus what was kept before it. */
interface Following {
  source: { written: { stdout: number; stderr: number } };
  alreadyKept: { stdout: number; stderr: number };
  replayed: boolean;
}

interface WaitBody {
  StatusCode: number;
  Error?: { Message?: string } | null;
}

/** The connection to the engine broke under a running container. */
class EngineLost extends Error {
  constructor() {
    super('lost the connection to the docker engine');
  }
}

async function gatherGpuFacts(
  spec: ExecutorSpec,
  visible: DockerExecutorOptions['visibleDevices'],
): Promise<DockerHostFacts> {
  const facts: DockerHostFacts = { cudaVisibleDevices: visible?.cuda, amdVisibleDevices: visible?.amd };
  if (spec.gpu?.stack !== 'rocm') return facts;
  const names = (await readdir('/dev/dri').catch(() => [] as string[])).filter((n) =>
    n.startsWith('renderD'),
  );
  facts.renderDevices = await Promise.all(
    names.sort().map(async (n) => ({ path: `/dev/dri/${n}`, gid: (await stat(`/dev/dri/${n}`)).gid })),
  );
  facts.kfdGid = await stat('/dev/kfd').then(
    (s) => s.gid,
    () => undefined,
  );
  return facts;
}

/** Runs one container on a Docker engine through dockerode. One instance, one container. */
export class DockerExecutor implements ContainerExecutor {
  private readonly docker: Dockerode;
  private readonly log: Logger;
  private readonly watchdogIntervalMs: number;
  private readonly engineOutageMs: number;
  private container: Dockerode.Container | undefined;
  private spec: ExecutorSpec | undefined;
  private streams: OutputStreams | undefined;
  private following: Following | undefined;
  private events: ContainerWatch | undefined;
  /** Set before the executor sends any signal, so the engine's kill events can be told apart. */
  private stopping = false;
  private exitCode: number | null = null;
  private exitedUnwatched = false;
  readonly capabilities: RuntimeCapabilities = { adopt: true, exec: true };
  /** Engine outages this container lived through. */
  private readonly reattached: Reattachment[] = [];
  private attachStream: Readable | Duplex | undefined;
  private output: Promise<void> | undefined;
  private exit: Promise<number> | undefined;
  private started = false;
  private tarballPath: string | undefined;
  private closed = false;
  /** The namespace holder this container joined; given back once the container stopped. */
  private holder: NetnsHolder | null = null;
  private holderReplaced = false;
  private readonly cgroups: JobCgroups;
  /** This container's parent cgroup, whose counters outlive it; or why it has none. */
  private jobCgroup: JobCgroup | undefined;

  constructor(private readonly options: DockerExecutorOptions = {}) {
    defaultDocker ??= new Dockerode();
    this.docker = options.docker ?? defaultDocker;
    this.log = options.logger ?? pino({ level: 'silent' });
    this.watchdogIntervalMs = options.watchdogIntervalMs ?? DEFAULT_WATCHDOG_INTERVAL_MS;
    this.engineOutageMs = options.engineOutageMs ?? DEFAULT_ENGINE_OUTAGE_MS;
    this.cgroups = options.cgroups ?? new JobCgroups(this.docker);
  }

  reattachments(): readonly Reattachment[] {
    return this.reattached;
  }

  /** The container's id; '' before create. */
  get containerId(): string {
    return this.container?.id ?? '';
  }

  async loadImage(image: string, tarballPath?: string): Promise<void> {
    this.tarballPath = tarballPath;
    await loadDockerImage(this.docker, image, tarballPath);
  }

  async create(spec: ExecutorSpec): Promise<void> {
    if (this.container) throw new PhaseError('creating', 'this executor already created a container');
    const facts = await gatherGpuFacts(spec, this.options.visibleDevices);
    const reuse = !spec.enableNetwork && this.options.reuseNetns !== false;
    this.holder = reuse ? await NetnsHolders.of(this.docker).acquire(this.log) : null;
    // Kept when create() runs again for the same job (a namespace holder was replaced).
    this.jobCgroup ??= await this.cgroups.prepare(spec.cgroupParent);
    const cgroup = this.jobCgroup;
    const body = toDockerCreateOptions(
      'parent' in cgroup ? { ...spec, cgroupParent: cgroup.parent } : spec,
      {
        name: this.options.name,
        labels: this.options.labels,
        logDriver: this.options.logDriver,
        netnsHolder: this.holder ?? undefined,
      },
      facts,
    );
    try {
      this.container = await this.createWithImage(body, spec.image);
    } catch (error) {
      this.releaseHolder();
      throw wrapEngineError('creating', `cannot create container from ${spec.image}`, error);
    }
    this.spec = spec;
    this.streams = { stdout: spec.stdout, stderr: spec.stderr };
    const container = this.container;
    this.log.debug({ containerId: container.id }, 'container created');
    try {
      // Attach (and subscribe to its events) before start so no byte of output is missed.
      const [attached] = await Promise.all([
        this.attachOutput(container, spec.stdin !== undefined, this.streams),
        this.watchEvents(container),
      ]);
      this.following = { source: attached, alreadyKept: { stdout: 0, stderr: 0 }, replayed: false };
      this.followOutput(attached);
    } catch (error) {
      throw wrapEngineError('creating', 'cannot attach to the container output', error);
    }
  }

  /** Creates; if the engine lost the image since loadImage() saw it, loads it once more and retries. */
  private async createWithImage(
    body: Dockerode.ContainerCreateOptions,
    image: string,
  ): Promise<Dockerode.Container> {
    try {
      return await this.docker.createContainer(body);
    } catch (error) {
      if (statusCodeOf(error) !== 404 || this.tarballPath === undefined) throw error;
      forgetImage(this.docker, image);
      await loadDockerImage(this.docker, image, this.tarballPath);
      return this.docker.createContainer(body);
    }
  }

  /**
   * Takes over a container that an earlier worker created and lost (it crashed or detached):
   * follows its output from now on and its exit. When the container's log driver keeps output
   * (local, json-file), everything is replayed from the engine's logs and the first
   * `alreadyKept` bytes of each stream are skipped, so nothing is lost or doubled. Resolves with
   * whether the engine's logs made that possible.
   */
  async adopt(containerId: string, streams: OutputStreams, alreadyKept: StreamCounts): Promise<Adoption> {
    const container = this.docker.getContainer(containerId);
    // Watch before looking, so an exit in between is not missed.
    await this.watchEvents(container);
    let info: Dockerode.ContainerInspectInfo;
    try {
      info = await container.inspect();
    } catch (error) {
      DockerEvents.of(this.docker).unwatch(containerId);
      throw wrapEngineError('running', `cannot adopt container ${containerId}`, error);
    }
    this.container = container;
    this.started = true;
    this.streams = streams;
    const parent = info.HostConfig.CgroupParent;
    this.jobCgroup = this.cgroups.owns(parent)
      ? { parent }
      : { unavailable: 'the adopted container has no per-job parent cgroup (made by an older worker)' };
    const replayed = await this.follow(container, info, alreadyKept);
    this.log.info({ containerId, replayed, running: info.State.Running }, 'container adopted');
    return { replayed, running: info.State.Running };
  }

  /**
   * Follows a container's output and exit from now on. With a log driver that keeps output, the
   * engine's logs are replayed from the start, skipping what the outputs already hold; otherwise
   * output is attached from now (what was written meanwhile is lost). Resolves with which.
   */
  private async follow(
    container: Dockerode.Container,
    info: Dockerode.ContainerInspectInfo,
    alreadyKept: { stdout: number; stderr: number },
  ): Promise<boolean> {
    const streams = this.streams as OutputStreams;
    // Its `die` event came before anyone watched: wait() must not wait for it.
    if (!info.State.Running) this.exitedUnwatched = true;
    const replayed = (info.HostConfig.LogConfig?.Type ?? 'none') !== 'none';
    if (replayed) {
      const demux = new DockerDemux(
        new SkipBytes(streams.stdout, alreadyKept.stdout),
        new SkipBytes(streams.stderr, alreadyKept.stderr),
      );
      this.following = { source: demux, alreadyKept, replayed };
      const logs = (await container.logs({
        follow: true,
        stdout: true,
        stderr: true,
      })) as unknown as Readable;
      const done = pipeline(logs, demux);
      this.followOutput({ socket: logs, done, written: demux.written });
    } else if (info.State.Running) {
      const attached = await this.attachOutput(container, false, streams);
      this.following = { source: attached, alreadyKept, replayed };
      this.followOutput(attached);
    } else {
      this.following = { source: { written: { stdout: 0, stderr: 0 } }, alreadyKept, replayed };
      this.output = Promise.resolve();
    }
    this.waitForExit(container);
    return replayed;
  }

  /**
   * Attaches to the container's output (and stdin): over our own connection, read with one
   * reused buffer (raw-attach.ts), where the client talks plain HTTP; through dockerode otherwise.
   */
  private async attachOutput(
    container: Dockerode.Container,
    stdin: boolean,
    targets: OutputStreams,
  ): Promise<OutputFollow> {
    const raw = await attachRaw(this.docker, container.id, { stdin }, targets);
    if (raw) return raw;
    const stream = (await container.attach({
      stream: true,
      stdout: true,
      stderr: true,
      stdin,
      hijack: true,
    })) as Duplex;
    const demux = new DockerDemux(targets.stdout, targets.stderr);
    return { socket: stream, done: pipeline(stream, demux), written: demux.written };
  }

  /** Follows an output stream from now on; wait() awaits its end. */
  private followOutput(follow: OutputFollow): void {
    this.attachStream = follow.socket;
    this.output = follow.done;
    // Keep an early failure from being reported as unhandled; wait() rethrows it.
    this.output.catch(() => undefined);
  }

  /**
   * Asks the engine for the exit code. "not-running" on a started container answers at once if
   * it has already exited; a "next-exit" wait sent before start can reach the engine after a
   * fast container exited and then wait forever.
   */
  private waitForExit(container: Dockerode.Container): void {
    this.exit = container.wait({ condition: 'not-running' }).then((body: WaitBody) => {
      if (body.Error?.Message)
        this.log.warn({ containerId: container.id, error: body.Error.Message }, 'wait error');
      this.releaseHolder(); // stopped: none of its processes is left in the namespace
      return body.StatusCode;
    });
    this.exit.catch(() => undefined);
  }

  /** Bytes of each stream the outputs hold now. */
  private kept(): { stdout: number; stderr: number } {
    const f = this.following;
    if (!f) return { stdout: 0, stderr: 0 };
    const total = (name: 'stdout' | 'stderr'): number =>
      f.replayed
        ? Math.max(f.alreadyKept[name], f.source.written[name])
        : f.alreadyKept[name] + f.source.written[name];
    return { stdout: total('stdout'), stderr: total('stderr') };
  }

  /** Subscribes to the container's engine events; without them the executor falls back to inspect. */
  private async watchEvents(container: Dockerode.Container): Promise<void> {
    try {
      this.events = await DockerEvents.of(this.docker).watch(
        container.id,
        () => this.stopping || this.closed,
      );
    } catch (error) {
      this.log.debug({ containerId: container.id, err: error }, 'no engine events; using inspect');
    }
  }

  async start(): Promise<void> {
    const container = this.requireContainer('starting');
    const spec = this.spec as ExecutorSpec;
    try {
      await container.start();
    } catch (error) {
      const holder = this.holder;
      if (holder && !this.holderReplaced && (error as Error).message.includes(holder.id)) {
        this.holderReplaced = true;
        // The holder ended or was removed (a daemon restart ends them all): make the container
        // again with a holder that lives. It never ran, so nothing of it is lost.
        this.log.info(
          { containerId: container.id, holderId: holder.id },
          'namespace holder gone; creating again',
        );
        NetnsHolders.of(this.docker).discard(holder, true);
        this.holder = null;
        await this.discardUnstarted(container);
        await this.create(spec);
        return this.start();
      }
      this.releaseHolder();
      const message = (error as Error).message;
      if (/executable file not found|no such file or directory/i.test(message)) {
        throw new CommandNotFoundError(
          `command not found in image ${spec.image}: ${JSON.stringify(spec.command[0])} (engine said: ${cleanEngineMessage(message)})`,
          { cause: error },
        );
      }
      throw wrapEngineError('starting', 'cannot start the container', error);
    }
    this.started = true;
    // Asked only after start() returned (see waitForExit).
    this.waitForExit(container);
    this.log.debug({ containerId: container.id }, 'container started');
    if (spec.stdin && this.attachStream) {
      const socket = this.attachStream as Duplex;
      const input = spec.stdin;
      // pipe() honours backpressure, so large stdin never sits in memory; end() half-closes
      // the hijacked connection and the engine closes the program's stdin (StdinOnce).
      input.pipe(socket, { end: false });
      input.once('end', () => socket.end());
      input.once('error', (error) => {
        this.log.warn({ containerId: container.id, err: error }, 'stdin source failed; closing stdin');
        socket.end();
      });
    }
  }

  async wait(signal?: AbortSignal): Promise<number> {
    const container = this.requireContainer('running');
    if (!this.exit) throw new PhaseError('running', 'wait() called before start() succeeded');
    signal?.throwIfAborted();
    const done = new AbortController();
    const aborted = new Promise<never>((_, reject) => {
      const onAbort = (): void =>
        reject(new PhaseError('running', 'wait aborted', { cause: signal?.reason }));
      signal?.addEventListener('abort', onAbort, { once: true });
      done.signal.addEventListener('abort', () => signal?.removeEventListener('abort', onAbort), {
        once: true,
      });
    });
    aborted.catch(() => undefined);
    try {
      let code: number | null = null;
      while (code === null) {
        const watchdog = new AbortController();
        // A dropped event stream is the quickest sign of a daemon restart: the wait request may
        // never settle then (its response is cut off after the headers).
        const lost = this.events?.nextLoss().then(() => {
          throw new EngineLost();
        });
        lost?.catch(() => undefined);
        try {
          code = await Promise.race([
            this.exit,
            aborted,
            watchContainer(container, {
              intervalMs: this.watchdogIntervalMs,
              outageMs: this.engineOutageMs,
              stop: watchdog.signal,
              log: this.log,
            }),
            ...(lost ? [lost] : []),
          ]);
        } catch (error) {
          if (error instanceof PhaseError || statusCodeOf(error) !== undefined) throw error;
          // The connection to the engine broke (a daemon restart?): wait for it, take the container back.
          code = await this.resume(container, error instanceof EngineLost, signal);
        } finally {
          watchdog.abort();
        }
      }
      await Promise.race([this.output, aborted]);
      this.exitCode = code;
      await this.refuseForeignStop(code);
      return code;
    } catch (error) {
      if (error instanceof PhaseError) throw error;
      throw wrapEngineError('running', 'lost track of the container', error);
    } finally {
      done.abort();
    }
  }

  /**
   * After the engine connection broke: waits for the engine, then reattaches to the container
   * if it survived (null: keep waiting), collects its exit code if it ended on its own while the
   * engine kept it (live-restore), and fails as infra when the engine stopped it or lost it.
   */
  private async resume(
    container: Dockerode.Container,
    onlyEventsDropped: boolean,
    signal?: AbortSignal,
  ): Promise<number | null> {
    // Only the event stream dropped while the output stream is still open and the engine
    // answers: not a restart (a proxy closing idle connections, say). Keep what we have.
    const output = this.attachStream;
    if (onlyEventsDropped && output && !output.destroyed && !output.readableEnded) {
      const answers = await container.inspect({ abortSignal: AbortSignal.timeout(1_000) }).then(
        () => true,
        () => false,
      );
      if (answers) {
        this.log.debug(
          { containerId: container.id },
          'engine event stream dropped; the engine still answers',
        );
        return null;
      }
    }
    const lostAt = Date.now();
    this.log.warn({ containerId: container.id }, 'lost the docker engine; waiting for it to come back');
    // The old output stream must never deliver alongside a new one.
    this.attachStream?.destroy();
    const info = await awaitEngine(container, {
      lostAt,
      limitMs: this.engineOutageMs,
      intervalMs: Math.min(this.watchdogIntervalMs, 500),
      signal,
    });
    const running = info.State.Running;
    if (!running && !(await liveRestoreEnabled(this.docker))) {
      throw new InfrastructureError(
        'running',
        `the docker engine restarted and stopped the container (exit ${info.State.ExitCode}; live-restore is off, enable it in dockerd to keep containers across restarts); the job is retried while attempts remain`,
      );
    }
    const replayed = await this.follow(container, info, this.kept());
    this.reattached.push({ at: new Date().toISOString(), running, replayed });
    this.log.warn(
      { containerId: container.id, running, replayed },
      'docker engine back; container taken back',
    );
    return running ? null : info.State.ExitCode;
  }

  /** A container someone else stopped (the daemon shutting down, docker stop/kill) did not finish: infra. */
  private async refuseForeignStop(code: number): Promise<void> {
    const events = this.events;
    if (!events) return;
    if (!this.exitedUnwatched) await events.died(DIE_EVENT_WAIT_MS);
    if (events.foreignSignal === null) return;
    throw new InfrastructureError(
      'running',
      `the container was stopped from outside Stevedore (signal ${events.foreignSignal}, exit ${code}): the docker daemon shutting down, or docker stop/kill on the host (stop a job with "stevedore cancel"); the job is retried while attempts remain`,
    );
  }

  async stop(options: { graceMs?: number } = {}): Promise<void> {
    const container = this.container;
    if (!container || !this.started) return;
    this.stopping = true;
    const graceMs = Math.max(0, options.graceMs ?? 0);
    if (graceMs > 0) {
      if (!(await this.signal(container, 'SIGTERM'))) return;
      const exited = await Promise.race([
        (this.exit ?? Promise.resolve(0)).then(
          () => true,
          () => true,
        ),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), graceMs).unref()),
      ]);
      if (exited) return;
    }
    await this.signal(container, 'SIGKILL');
  }

  /** Lets go of the container without removing it (another worker will adopt it). */
  detach(): void {
    this.closed = true;
    this.attachStream?.destroy();
    if (this.container) DockerEvents.of(this.docker).unwatch(this.container.id);
    // The running container keeps its namespace without the holder; no other job may join it.
    if (this.holder) NetnsHolders.of(this.docker).discard(this.holder);
    this.holder = null;
  }

  /** Gives the namespace holder back for the next job; only once this container cannot run again. */
  private releaseHolder(): void {
    if (this.holder) NetnsHolders.of(this.docker).release(this.holder);
    this.holder = null;
  }

  /** Removes a container that never started and forgets it, so create() can make another. */
  private async discardUnstarted(container: Dockerode.Container): Promise<void> {
    this.attachStream?.destroy();
    DockerEvents.of(this.docker).unwatch(container.id);
    await container.remove({ force: true }).catch(() => undefined);
    this.container = undefined;
    this.attachStream = undefined;
    this.following = undefined;
    this.output = undefined;
    this.events = undefined;
  }

  /** Sends a signal; false when the container is no longer running. */
  private async signal(container: Dockerode.Container, signal: string): Promise<boolean> {
    try {
      await container.kill({ signal });
      this.log.debug({ containerId: container.id, signal }, 'signal sent');
      return true;
    } catch (error) {
      if (isGone(error) || isAlreadyInState(error)) return false;
      throw wrapEngineError('stopping', `cannot send ${signal}`, error);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.attachStream?.destroy();
    const container = this.container;
    if (!container) {
      this.releaseHolder();
      return;
    }
    DockerEvents.of(this.docker).unwatch(container.id);
    try {
      await container.remove({ force: true, v: true });
      this.releaseHolder();
      this.log.debug({ containerId: container.id }, 'container removed');
      await this.removeCgroup(container.id);
    } catch (error) {
      if (isGone(error) || isAlreadyInState(error)) {
        this.releaseHolder();
        await this.removeCgroup(container.id);
        return;
      }
      this.closed = false; // let a later close() try again
      throw wrapEngineError('closing', `cannot remove container ${container.id}`, error);
    }
  }

  async exitDetails(): Promise<ExitDetails> {
    const container = this.requireContainer('running');
    // The engine's events already tell, unless some were missed or the first process died of
    // SIGKILL (then its `oom` event may trail the `die`, and inspect has the final word).
    const events = this.events;
    if (events?.oom) return { oomKilled: true };
    if (events && !events.gap && events.exitCode !== null && this.exitCode !== EXIT_SIGKILL) {
      return { oomKilled: false };
    }
    try {
      const info = await container.inspect();
      return { oomKilled: info.State.OOMKilled === true };
    } catch (error) {
      throw wrapEngineError('finalizing', 'cannot inspect the exited container', error);
    }
  }

  async usage(): Promise<UsageSample | null> {
    const container = this.container;
    if (!container || !this.started) return null;
    try {
      return await dockerUsage(container);
    } catch (error) {
      if (isGone(error)) return null;
      throw wrapEngineError('running', 'cannot read container stats', error);
    }
  }

  async finalUsage(): Promise<FinalUsage> {
    const cgroup = this.jobCgroup;
    if (!cgroup) return noUsage('no container was created');
    if ('unavailable' in cgroup) return noUsage(cgroup.unavailable);
    return this.cgroups
      .read(cgroup.parent)
      .catch((error: unknown) => noUsage(`cannot read cgroup ${cgroup.parent}: ${(error as Error).message}`));
  }

  /** Removes the parent cgroup once its container is gone; a failure leaves an empty directory, so it is only logged. */
  private async removeCgroup(containerId: string): Promise<void> {
    const cgroup = this.jobCgroup;
    if (!cgroup || !('parent' in cgroup)) return;
    try {
      await this.cgroups.remove(cgroup.parent);
      this.log.debug({ containerId, cgroup: cgroup.parent }, 'parent cgroup removed');
    } catch (error) {
      this.log.warn({ containerId, err: error }, 'could not remove the parent cgroup; an empty one is left');
    }
  }

  cgroupId(): string {
    return this.containerId;
  }

  async pid(): Promise<number> {
    const container = this.container;
    if (!container) return 0;
    try {
      const info = await container.inspect();
      return info.State.Running ? info.State.Pid : 0;
    } catch (error) {
      if (isGone(error)) return 0;
      throw wrapEngineError('running', 'cannot inspect the container', error);
    }
  }

  async runtime(): Promise<string> {
    let name = RUNTIME_NAMES.get(this.docker);
    if (!name) {
      name = this.docker.version().then((v) => `docker ${v.Version}`);
      RUNTIME_NAMES.set(this.docker, name);
      name.catch(() => RUNTIME_NAMES.delete(this.docker));
    }
    return name;
  }

  async ipAddress(): Promise<string> {
    const container = this.requireContainer('running');
    const info = await container.inspect();
    const settings = info.NetworkSettings;
    const address = Object.values(settings.Networks ?? {})
      .map((n) => n.IPAddress)
      .find((a) => a);
    if (info.HostConfig.NetworkMode === 'none' || !address) {
      throw new PhaseError(
        'running',
        `container ${container.id} has no network address (network disabled or not running)`,
      );
    }
    return address;
  }

  async exec(command: string[], options: ExecOptions = {}): Promise<ExecResult> {
    return dockerExec(this.requireContainer('exec'), command, options);
  }

  private requireContainer(phase: 'starting' | 'running' | 'exec'): Dockerode.Container {
    if (!this.container) throw new PhaseError(phase, 'no container: call create() first');
    return this.container;
  }
}
