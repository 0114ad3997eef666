import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { type Logger, pino } from 'pino';
import { CommandNotFoundError, coerceError, InfrastructureError, PhaseError } from '../../jobs/errors.js';
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
  Reattachment,
  StopOutcome,
  UsageSample,
} from '../executor.js';
import type { RuntimeCapabilities } from '../runtime.js';
import type { SingularityCommand } from './args.js';
import { JobCgroup } from './cgroup.js';
import { addressOf, confinedExec } from './exec.js';
import { confinedExecStream, type ExecTarget } from './exec-stream.js';
import { sifKeyOf } from './images.js';
import { prepareContainer } from './prepare.js';
import { type ProcessExit, SingularityProcess } from './process.js';
import { processStartTime } from './records.js';
import type { SingularityRuntime } from './runtime.js';

/** Where the executor is in its one container's life; `closed` is final. */
type ExecutorState = 'new' | 'created' | 'started' | 'closed';

export interface SingularityExecutorOptions {
  runtime: SingularityRuntime;
  labels?: Record<string, string>;
  logger?: Logger;
}

/** Runs one container with Apptainer/SingularityCE as a child process of the worker. One instance, one container. */
export class SingularityExecutor implements ContainerExecutor {
  readonly capabilities: RuntimeCapabilities;
  private readonly rt: SingularityRuntime;
  private readonly log: Logger;
  private state: ExecutorState = 'new';
  private id = '';
  private spec: ExecutorSpec | undefined;
  private command: SingularityCommand | undefined;
  private cgroup: JobCgroup | { unavailable: string } | undefined;
  private process: SingularityProcess | undefined;
  private exited: ProcessExit | undefined;
  private releaseImage: (() => void) | undefined;
  private envScriptPath: string | undefined;

  constructor(private readonly options: SingularityExecutorOptions) {
    this.rt = options.runtime;
    this.capabilities = this.rt.capabilities;
    this.log = options.logger ?? pino({ level: 'silent' });
  }

  get containerId(): string {
    return this.id;
  }

  reattachments(): readonly Reattachment[] {
    return [];
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
    const key = await this.holdImage(image);
    this.id = randomUUID();
    const sifPath = this.rt.images.cache.pathOf(key);
    const prepared = await prepareContainer(this.rt, spec, { id: this.id, sifPath }, this.log);
    this.cgroup = prepared.cgroup;
    this.envScriptPath = prepared.envScriptPath;
    await this.rt.records.write(this.record(0, ''));
    this.command = prepared.command;
    this.spec = spec;
    this.state = 'created';
  }

  /** Holds the image's SIF for this container: loaded again the same way if another job's conversion evicted it since. */
  private async holdImage(image: LoadedImage): Promise<string> {
    const key = sifKeyOf(image);
    this.releaseImage = await this.rt.images.cache.acquire(key);
    if (await this.rt.images.cache.has(key)) return key;
    this.releaseImage();
    const again = sifKeyOf(await this.rt.images.ensure(image.request, this.log));
    this.releaseImage = await this.rt.images.cache.acquire(again);
    return again;
  }

  private record(pid: number, pidStartedAt: string) {
    return {
      id: this.id,
      labels: this.options.labels ?? {},
      cgroup: this.cgroup instanceof JobCgroup ? this.cgroup.path : '',
      pid,
      pidStartedAt,
      createdAt: Date.now(),
    };
  }

  async start(): Promise<void> {
    const { spec, command } = this;
    if (this.state !== 'created' || !spec || !command) {
      throw new PhaseError(
        'starting',
        `no container to start: this executor is ${this.state} (call create() first)`,
      );
    }
    const cgroup = this.cgroup instanceof JobCgroup ? this.cgroup : null;
    const child = new SingularityProcess(this.rt.bin.path, command, cgroup, spec);
    this.process = child;
    this.state = 'started';
    void child.exit.then(
      (exit) => {
        this.exited = exit;
      },
      () => undefined,
    );
    if (child.pid === 0) {
      const why = await child.exit.then(
        () => 'no process',
        (error: Error) => error.message,
      );
      throw new InfrastructureError('starting', `cannot run ${this.rt.bin.path}: ${why}`);
    }
    await this.rt.records.write(this.record(child.pid, (await processStartTime(child.pid)) ?? ''));
    this.log.debug({ containerId: this.id, pid: child.pid }, 'container started');
    // Started = the command runs (so pid() and exec() find it), within a bound: a start that is
    // not seen is logged, and exec() says so. Without an init the runtime's own "not found" is the
    // start's failure, as on Docker; under the init it is exit 127.
    const early = await child.commandStarted(this.rt.startTimeoutMs);
    if (early === 'undetected') {
      this.log.warn(
        { containerId: this.id, pid: child.pid, timeoutMs: this.rt.startTimeoutMs },
        'the container command was not seen running within the start bound; exec() will fail until it is',
      );
    } else if (spec.init === false && early?.missingCommand) {
      throw new CommandNotFoundError(
        `command not found in image ${spec.image}: ${JSON.stringify(spec.command[0])} (${this.rt.bin.flavour} said: ${early.missingCommand})`,
      );
    }
  }

  async adopt(): Promise<Adoption> {
    throw new PhaseError(
      'running',
      `the ${this.rt.bin.flavour} runtime cannot adopt a container: its containers end with their worker`,
    );
  }

  async wait(signal?: AbortSignal): Promise<number> {
    const child = this.process;
    if (!child)
      throw new PhaseError('running', `wait() needs a started container; this executor is ${this.state}`);
    signal?.throwIfAborted();
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(new PhaseError('running', 'wait aborted', { cause: signal?.reason }));
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    try {
      const exit = await Promise.race([child.exit, aborted]);
      return exit.code;
    } catch (error) {
      if (error instanceof PhaseError) throw error;
      throw new InfrastructureError(
        'running',
        `the ${this.rt.bin.flavour} process failed: ${coerceError(error).message}`,
        { cause: error },
      );
    } finally {
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  async stop(options: { graceMs?: number } = {}): Promise<StopOutcome> {
    const signalled = (await this.process?.stop(Math.max(0, options.graceMs ?? 0))) ?? false;
    return { signalled };
  }

  detach(): void {
    // Nothing outlives the worker here (capabilities.adopt is false): a detaching worker's close() stops it.
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const child = this.process;
    if (child?.running) {
      await child.kill();
      await child.exit.catch(() => undefined);
    }
    this.state = 'closed';
    this.releaseImage?.();
    if (this.cgroup instanceof JobCgroup) {
      const cgroup = this.cgroup;
      // A failure leaves only an empty directory: logged, never the run's failure.
      await cgroup
        .remove()
        .catch((error: unknown) =>
          this.log.warn({ containerId: this.id, err: error }, 'could not remove the job cgroup'),
        );
    }
    if (this.envScriptPath) await rm(this.envScriptPath, { force: true });
    if (this.id) await this.rt.records.remove(this.id);
  }

  async exitDetails(): Promise<ExitDetails> {
    // OOM kills show as a SIGKILL; the memory cgroup's failcnt tells them apart.
    const oomKilled =
      this.exited?.code === 137 && this.cgroup instanceof JobCgroup ? await this.cgroup.oomKilled() : false;
    return { oomKilled, outputCut: null, notApplied: this.command?.notApplied ?? [] };
  }

  async usage(): Promise<UsageSample | null> {
    if (!this.process?.running || !(this.cgroup instanceof JobCgroup)) return null;
    return this.cgroup.sample();
  }

  async finalUsage(): Promise<FinalUsage> {
    const cgroup = this.cgroup;
    const none = (missing: string): FinalUsage => ({
      cpuSeconds: null,
      peakMemoryBytes: null,
      blockIoBytes: null,
      missing,
    });
    if (!cgroup) return none('no container was created');
    if (!(cgroup instanceof JobCgroup)) return none(cgroup.unavailable);
    return cgroup.final();
  }

  cgroupId(): string {
    if (this.cgroup instanceof JobCgroup) return this.cgroup.path;
    return this.id;
  }

  async pid(): Promise<number> {
    return this.process?.containerPid() ?? 0;
  }

  runtime(): Promise<string> {
    return this.rt.version();
  }

  async ipAddress(): Promise<string> {
    const pid = await this.runningPid('running');
    if (!this.spec?.enableNetwork) throw new PhaseError('running', 'the container has no network');
    const address = await addressOf(pid);
    if (!address)
      throw new PhaseError('running', "the container has no network address (no network, or the host's)");
    return address;
  }

  async exec(command: string[], options: ExecOptions = {}): Promise<ExecResult> {
    return confinedExec(await this.execTarget(), command, options);
  }

  async execStream(request: ExecStreamRequest): Promise<ExecStream> {
    return confinedExecStream(await this.execTarget(), request);
  }

  /** What an exec into this container needs: its process, its cgroup, and the host's tools. */
  private async execTarget(): Promise<ExecTarget> {
    const pid = await this.runningPid('exec');
    return {
      tools: await this.rt.execTools(),
      root: this.rt.hardening.root,
      pid,
      cgroupProcs: this.cgroup instanceof JobCgroup ? this.cgroup.procsFiles() : [],
    };
  }

  private async runningPid(phase: 'running' | 'exec'): Promise<number> {
    if (!this.process) throw new PhaseError(phase, 'no container: call create() and start() first');
    const seen = await this.process.commandStarted(this.rt.startTimeoutMs);
    if (seen === 'undetected') {
      throw new PhaseError(
        phase,
        `container ${this.id}: its command was not seen running within ${this.rt.startTimeoutMs / 1000} s (no process of the image's in its cgroup ${this.cgroupId()}), so there is nothing to ${phase === 'exec' ? 'exec into' : 'read'}; check the job's output and events.log, or stop the job`,
      );
    }
    const pid = await this.process.containerPid();
    if (pid === 0) throw new PhaseError(phase, 'the container is not running');
    return pid;
  }
}
