import type Dockerode from 'dockerode';
import { type Logger, pino } from 'pino';
import { coerceError, PhaseError } from '../../jobs/errors.js';
import type {
  Adoption,
  ContainerExecutor,
  ExecOptions,
  ExecResult,
  ExecStream,
  ExecStreamRequest,
  ExecutorSpec,
  ExitDetails,
  FinalUsage,
  ImageRequest,
  LoadedImage,
  OutputSink,
  Reattachment,
  StopOutcome,
  StreamCounts,
  UsageSample,
} from '../executor.js';
import type { RuntimeCapabilities } from '../runtime.js';
import { adoptedCgroup, type JobCgroup, noUsage } from './cgroup.js';
import { ContainerExit } from './container-exit.js';
import { IMAGE_LABEL } from './create-options.js';
import { isAlreadyInState, isGone, startError, wrapEngineError } from './errors.js';
import type { ContainerWatch } from './events.js';
import { dockerExec } from './exec.js';
import { dockerExecStream } from './exec-stream.js';
import { type DockerExecutorOptions, exitSettings, logDriverOf } from './executor-options.js';
import { gatherGpuFacts } from './gpu-facts.js';
import { ipAddressOf, oomKilledOf, pidOf, usageOf } from './inspect.js';
import { MadeContainer, takeOver } from './made-container.js';
import { OutputFollower } from './output-follower.js';
import { DockerRuntime } from './runtime.js';
import { stopContainer } from './stop.js';

/**
 * Where the executor is in its one container's life. `created` and `started` are ours
 * (create(), start()); `adopted` is a container another executor made; `detached` and `closed`
 * are final.
 */
type ExecutorState = 'new' | 'created' | 'started' | 'adopted' | 'detached' | 'closed';

export type { DockerExecutorOptions };

/** Runs one container on a Docker engine through dockerode. One instance, one container. */
export class DockerExecutor implements ContainerExecutor {
  readonly capabilities: RuntimeCapabilities;
  private readonly runtimeOwned: boolean;
  private readonly rt: DockerRuntime;
  private readonly log: Logger;
  private state: ExecutorState = 'new';
  private container: Dockerode.Container | undefined;
  private made: MadeContainer | undefined;
  private watch: ContainerWatch | undefined;
  private exit: ContainerExit | undefined;
  private output: OutputFollower | undefined;
  private spec: ExecutorSpec | undefined;
  /** Set before the executor sends any signal, so the engine's kill events can be told apart. */
  private stopping = false;
  private exitCode: number | null = null;
  /** This container's parent cgroup, whose counters outlive it; or why it has none. */
  private jobCgroup: JobCgroup | undefined;

  constructor(private readonly options: DockerExecutorOptions = {}) {
    this.runtimeOwned = options.runtime === undefined;
    this.rt = options.runtime ?? new DockerRuntime({ client: options.docker });
    this.log = options.logger ?? pino({ level: 'silent' });
    this.capabilities = this.rt.capabilities;
  }

  get containerId(): string {
    return this.container?.id ?? '';
  }

  reattachments(): readonly Reattachment[] {
    return this.exit?.reattached ?? [];
  }

  loadImage(request: ImageRequest): Promise<LoadedImage> {
    return this.rt.images.ensure(request, this.log);
  }

  async create(spec: ExecutorSpec, image: LoadedImage): Promise<void> {
    if (this.state !== 'new') throw new PhaseError('creating', `this executor is ${this.state}, not new`);
    if (image.request.image !== spec.image) {
      throw new PhaseError(
        'creating',
        `the image given was loaded for ${image.request.image}, the spec runs ${spec.image}: pass what loadImage() returned for spec.image`,
      );
    }
    const output = new OutputFollower(this.rt.docker, { stdout: spec.stdout, stderr: spec.stderr });
    const cgroup = await this.rt.cgroups.prepare(spec.cgroupParent);
    this.jobCgroup = cgroup;
    const made = await MadeContainer.make({
      runtime: this.rt,
      spec: 'parent' in cgroup ? { ...spec, cgroupParent: cgroup.parent } : spec,
      facts: await gatherGpuFacts(spec, this.options.visibleDevices ?? this.rt.defaults.visibleDevices),
      name: this.options.name,
      labels: this.options.labels,
      logDriver: logDriverOf(this.options, this.rt.defaults),
      reuseNetns: this.options.reuseNetns !== false,
      image: { id: image.imageId, reload: () => this.rt.images.reload(image.request, this.log) },
      output,
      ownSignal: () => this.ownSignal(),
      log: this.log,
    });
    this.output = output;
    this.made = made;
    this.container = made.container;
    this.state = 'created';
    this.spec = spec;
  }

  async start(): Promise<void> {
    const made = this.made;
    const spec = this.spec;
    if (this.state !== 'created' || !made || !spec || !this.output) {
      throw new PhaseError(
        'starting',
        `no container to start: this executor is ${this.state} (call create() first)`,
      );
    }
    try {
      await made.start();
    } catch (error) {
      made.releaseHolder();
      throw startError(spec, error);
    } finally {
      // It may have been made again (see MadeContainer): from now on it is this one.
      this.container = made.container;
      this.watch = made.watch;
    }
    this.state = 'started';
    this.exit = this.exitOf(made.container, false, () => made.releaseHolder());
    this.exit.ask();
    this.log.debug({ containerId: made.container.id }, 'container started');
    if (spec.stdin) this.output.pipeStdin(spec.stdin, this.log, made.container.id);
  }

  /**
   * Takes over a container that an earlier worker created and lost (it crashed or detached):
   * follows its output and its exit. With a log driver that keeps output, everything is replayed
   * from the engine's logs past the first `alreadyKept` bytes of each stream, so nothing is lost
   * or doubled.
   */
  async adopt(
    containerId: string,
    streams: { stdout: OutputSink; stderr: OutputSink },
    alreadyKept: StreamCounts,
  ): Promise<Adoption> {
    if (this.state !== 'new') throw new PhaseError('running', `cannot adopt: this executor is ${this.state}`);
    const { container, watch, info } = await takeOver(containerId, {
      runtime: this.rt,
      ownSignal: () => this.ownSignal(),
      log: this.log,
    });
    this.container = container;
    this.watch = watch;
    this.output = new OutputFollower(this.rt.docker, streams);
    this.state = 'adopted';
    this.jobCgroup = adoptedCgroup(this.rt.cgroups, info.HostConfig.CgroupParent);
    const replayed = await this.output.resume(container, info, alreadyKept);
    this.exit = this.exitOf(container, !info.State.Running);
    this.exit.ask();
    this.log.info({ containerId, replayed, running: info.State.Running }, 'container adopted');
    const image = await this.rt.images.identityOf(
      info.Image,
      info.Config.Labels?.[IMAGE_LABEL] ?? info.Config.Image,
    );
    return { replayed, running: info.State.Running, image };
  }

  async wait(signal?: AbortSignal): Promise<number> {
    const exit = this.exit;
    if (!exit)
      throw new PhaseError('running', `wait() needs a started container; this executor is ${this.state}`);
    this.exitCode = await exit.wait(signal);
    return this.exitCode;
  }

  async stop(options: { graceMs?: number } = {}): Promise<StopOutcome> {
    const container = this.container;
    const exit = this.exit;
    if (!container || !exit || (this.state !== 'started' && this.state !== 'adopted'))
      return { signalled: false };
    this.stopping = true;
    return stopContainer(container, exit.settled(), Math.max(0, options.graceMs ?? 0), this.log);
  }

  /** Lets go of the container without removing it (another worker will adopt it). */
  detach(): void {
    if (this.state === 'closed' || this.state === 'detached') return;
    this.state = 'detached';
    this.output?.destroy();
    if (this.container) this.rt.events.unwatch(this.container.id);
    this.made?.abandonHolder();
    if (this.runtimeOwned) void this.rt.close();
  }

  async close(): Promise<void> {
    if (this.state === 'closed' || this.state === 'detached') return;
    this.stopping = true; // the forced removal's kill is ours
    this.output?.destroy();
    const container = this.container;
    if (container) {
      this.rt.events.unwatch(container.id);
      try {
        await container.remove({ force: true, v: true });
        this.log.debug({ containerId: container.id }, 'container removed');
      } catch (error) {
        // Gone or going already: removed as far as we are concerned. Otherwise a later close() tries again.
        if (!isGone(error) && !isAlreadyInState(error)) {
          throw wrapEngineError('closing', `cannot remove container ${container.id}`, error);
        }
      }
    }
    this.state = 'closed';
    this.made?.releaseHolder();
    if (container && this.jobCgroup && 'parent' in this.jobCgroup) {
      // A failure leaves only an empty directory: logged, never the run's failure.
      await this.rt.cgroups
        .remove(this.jobCgroup.parent)
        .catch((error: unknown) =>
          this.log.warn({ containerId: container.id, err: error }, 'could not remove the parent cgroup'),
        );
    }
    if (this.runtimeOwned) await this.rt.close();
  }

  async exitDetails(): Promise<ExitDetails> {
    const container = this.requireContainer('running');
    const oomKilled = await oomKilledOf(container, this.watch, this.exitCode);
    return { oomKilled, outputCut: this.exit?.outputCut ?? null, notApplied: [] };
  }

  async usage(): Promise<UsageSample | null> {
    const running = this.state === 'started' || this.state === 'adopted';
    return this.container && running ? usageOf(this.container) : null;
  }

  async finalUsage(): Promise<FinalUsage> {
    const cgroup = this.jobCgroup;
    if (!cgroup) return noUsage('no container was created');
    if ('unavailable' in cgroup) return noUsage(cgroup.unavailable);
    return this.rt.cgroups
      .read(cgroup.parent)
      .catch((error: unknown) =>
        noUsage(`cannot read cgroup ${cgroup.parent}: ${coerceError(error).message}`),
      );
  }

  cgroupId(): string {
    return this.containerId;
  }

  async pid(): Promise<number> {
    return this.container ? pidOf(this.container) : 0;
  }

  runtime(): Promise<string> {
    return this.rt.version();
  }

  async ipAddress(): Promise<string> {
    return ipAddressOf(this.requireContainer('running'));
  }

  async exec(command: string[], options: ExecOptions = {}): Promise<ExecResult> {
    return dockerExec(this.requireContainer('exec'), command, options);
  }

  execStream(request: ExecStreamRequest): Promise<ExecStream> {
    return dockerExecStream(this.requireContainer('exec'), request);
  }

  private exitOf(
    container: Dockerode.Container,
    exitedUnwatched: boolean,
    onStopped?: () => void,
  ): ContainerExit {
    const settings = exitSettings(this.options, this.rt.defaults);
    const output = this.output as OutputFollower;
    return new ContainerExit(
      this.rt.docker,
      container,
      this.watch,
      output,
      settings,
      this.log,
      exitedUnwatched,
      onStopped,
    );
  }

  /** Whether a kill the engine reports now came from this executor. */
  private ownSignal(): boolean {
    return this.stopping || this.state === 'closed' || this.state === 'detached';
  }

  private requireContainer(phase: 'running' | 'exec'): Dockerode.Container {
    if (!this.container) throw new PhaseError(phase, 'no container: call create() first');
    return this.container;
  }
}
