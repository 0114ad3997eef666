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
  PullProgress,
  Reattachment,
  StopOutcome,
  StreamCounts,
  UsageSample,
} from '../../src/executors/executor.js';
import type { RuntimeCapabilities } from '../../src/executors/runtime.js';

/** The contract's operations, as the stub records them. */
export type StubStep =
  | 'loadImage'
  | 'runtime'
  | 'create'
  | 'start'
  | 'wait'
  | 'stop'
  | 'close'
  | 'exitDetails'
  | 'usage'
  | 'finalUsage'
  | 'adopt'
  | 'detach';

/** What the stub's "container" does; everything optional. */
export interface StubScript {
  /** The program's own exit code (default 0). */
  exitCode?: number;
  /** The program runs until exit(), stop() or close() (default: it exits right after start). */
  runsUntilExited?: boolean;
  /** Written to the output sinks when the program starts. */
  stdout?: string | Buffer;
  stderr?: string | Buffer;
  /** A step that throws this error instead of doing its work. */
  failures?: Partial<Record<StubStep, Error>>;
  /** Steps that block, once called, until release(step). */
  holds?: StubStep[];
  /** What finalUsage() reads after the exit (default: every counter missing, as a runtime without them). */
  finalUsage?: FinalUsage;
  /** What usage() reads while the program runs (default: null, as a runtime without stats). */
  usage?: UsageSample;
  oomKilled?: boolean;
  /** What exitDetails() says about output that was not drained. */
  outputCut?: string;
  /** The program ignores SIGTERM: a stop with a grace still ends in SIGKILL (137). */
  ignoresTerm?: boolean;
  capabilities?: Partial<RuntimeCapabilities>;
  /** What adopt() says it found (default: running, replayed, image unknown). */
  adoption?: Adoption;
  /** What loadImage() says it found (default: present, STUB_IMAGE_ID, no digest), for the request it was given. */
  image?: Omit<LoadedImage, 'request'>;
  /** Progress loadImage() reports, in order, before it returns (a pull). */
  pullProgress?: PullProgress[];
  /** loadImage() pulls until its signal aborts, then rejects as a real executor does. */
  pullsUntilAborted?: boolean;
  /** What pid() answers while the program runs (default 1): a real process stands in for the container. */
  pid?: number;
}

export const STUB_IMAGE_ID = `sha256:${'5'.repeat(64)}`;

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: Error) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Rejects once `signal` aborts, as DockerImages does for a job that stops waiting on a pull. */
function untilAborted(signal: AbortSignal | undefined): Promise<never> {
  return new Promise((_resolve, reject) => {
    const giveUp = (): void => reject(new Error('stopped waiting for the image', { cause: signal?.reason }));
    if (signal?.aborted) giveUp();
    signal?.addEventListener('abort', giveUp, { once: true });
  });
}

const SIGTERM_EXIT = 128 + 15;
const SIGKILL_EXIT = 128 + 9;

/**
 * A scripted ContainerExecutor (crunch-run's stubExecutor): no runtime, no Docker. Records every
 * call in order, lets a test hold a step or fail it, and runs a "program" that writes the
 * scripted output and exits with the scripted code, or as a stop or close makes it.
 */
export class StubExecutor implements ContainerExecutor {
  readonly capabilities: RuntimeCapabilities;
  containerId = '';
  readonly calls: StubStep[] = [];
  readonly stopOptions: ({ graceMs?: number } | undefined)[] = [];
  createdSpec: ExecutorSpec | null = null;
  /** The image create() was given. */
  createdImage: LoadedImage | null = null;
  adopted: { containerId: string; alreadyKept: StreamCounts } | null = null;
  imageRequest: ImageRequest | null = null;
  private cgroup = '';
  private exit: Deferred<number> | null = null;
  /** The program has ended (wait() may not have returned yet). */
  private exited = false;
  private readonly holds = new Map<StubStep, Deferred<void>>();
  private waiters: { step: StubStep; times: number; resolve: () => void }[] = [];

  constructor(private readonly script: StubScript = {}) {
    this.capabilities = { adopt: false, exec: false, ...script.capabilities };
    for (const step of script.holds ?? []) this.holds.set(step, deferred());
  }

  /** Settles once `step` has been called `times` times (at once if it already was). */
  reached(step: StubStep, times = 1): Promise<void> {
    if (this.count(step) >= times) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ step, times, resolve }));
  }

  /** Lets a held step go on. */
  release(step: StubStep): void {
    this.holds.get(step)?.resolve();
  }

  /** The program exits with `code` now (a program that already exited keeps its code). */
  exitNow(code: number): void {
    if (!this.exit || this.exited) return;
    this.exited = true;
    this.exit.resolve(code);
  }

  /** The runtime loses the container: a pending wait() rejects with `error`. */
  crash(error: Error): void {
    if (!this.exit || this.exited) return;
    this.exited = true;
    this.exit.reject(error);
  }

  count(step: StubStep): number {
    return this.calls.filter((s) => s === step).length;
  }

  async loadImage(request: ImageRequest): Promise<LoadedImage> {
    this.imageRequest = request;
    await this.enter('loadImage');
    if (this.script.pullsUntilAborted) await untilAborted(request.signal);
    for (const progress of this.script.pullProgress ?? []) request.onProgress?.(progress);
    const { image, tarballPath, pullPolicy } = request;
    const found = this.script.image ?? {
      imageId: STUB_IMAGE_ID,
      imageDigest: null,
      source: 'present',
      pull: null,
    };
    return { request: { image, tarballPath, pullPolicy }, ...found };
  }

  async runtime(): Promise<string> {
    await this.enter('runtime');
    return 'stub 1.0';
  }

  async create(spec: ExecutorSpec, image: LoadedImage): Promise<void> {
    await this.enter('create');
    this.createdSpec = spec;
    this.createdImage = image;
    this.containerId = 'stub-container';
    this.cgroup = 'stub-cgroup';
  }

  async start(): Promise<void> {
    await this.enter('start');
    const spec = this.createdSpec;
    if (spec) this.run(spec.stdout, spec.stderr);
  }

  async adopt(
    containerId: string,
    output: { stdout: OutputSink; stderr: OutputSink },
    alreadyKept: StreamCounts,
  ): Promise<Adoption> {
    await this.enter('adopt');
    if (!this.capabilities.adopt) throw new Error('adopt: this runtime cannot adopt');
    this.adopted = { containerId, alreadyKept };
    this.containerId = containerId;
    this.cgroup = 'stub-cgroup';
    this.run(output.stdout, output.stderr);
    return this.script.adoption ?? { running: true, replayed: true, image: null };
  }

  async wait(signal?: AbortSignal): Promise<number> {
    await this.enter('wait');
    const exit = this.exit;
    if (!exit) throw new Error('wait: no container was started');
    if (!signal) return exit.promise;
    if (signal.aborted) throw new Error('wait: abandoned');
    return new Promise<number>((resolve, reject) => {
      const abandon = (): void => reject(new Error('wait: abandoned'));
      signal.addEventListener('abort', abandon, { once: true });
      exit.promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', abandon));
    });
  }

  async stop(options?: { graceMs?: number }): Promise<StopOutcome> {
    this.stopOptions.push(options);
    await this.enter('stop');
    // No program, or one that already exited by itself: nothing is signalled, its exit code stays.
    if (!this.exit || this.exited) return { signalled: false };
    const termWorks = (options?.graceMs ?? 0) > 0 && !this.script.ignoresTerm;
    this.exitNow(termWorks ? SIGTERM_EXIT : SIGKILL_EXIT);
    return { signalled: true };
  }

  async close(): Promise<void> {
    await this.enter('close');
    this.exitNow(SIGKILL_EXIT);
  }

  async exitDetails(): Promise<ExitDetails> {
    await this.enter('exitDetails');
    return {
      oomKilled: this.script.oomKilled ?? false,
      outputCut: this.script.outputCut ?? null,
      notApplied: [],
    };
  }

  async usage(): Promise<UsageSample | null> {
    await this.enter('usage');
    return this.exit ? (this.script.usage ?? null) : null;
  }

  async finalUsage(): Promise<FinalUsage> {
    await this.enter('finalUsage');
    return (
      this.script.finalUsage ?? {
        cpuSeconds: null,
        peakMemoryBytes: null,
        blockIoBytes: null,
        missing: 'the stub keeps no counters',
      }
    );
  }

  cgroupId(): string {
    return this.cgroup;
  }

  async pid(): Promise<number> {
    return this.exit ? (this.script.pid ?? 1) : 0;
  }

  async ipAddress(): Promise<string> {
    throw new Error('ipAddress: the stub has no network');
  }

  async execStream(_request: ExecStreamRequest): Promise<ExecStream> {
    throw new Error('execStream: the stub cannot exec');
  }

  async exec(_command: string[], _options?: ExecOptions): Promise<ExecResult> {
    throw new Error('exec: the stub cannot exec');
  }

  detach(): void {
    this.record('detach');
  }

  reattachments(): readonly Reattachment[] {
    return [];
  }

  /** Records the call, waits while the step is held, then fails it if the script says so. */
  private async enter(step: StubStep): Promise<void> {
    this.record(step);
    await this.holds.get(step)?.promise;
    const failure = this.script.failures?.[step];
    if (failure) throw failure;
  }

  private record(step: StubStep): void {
    this.calls.push(step);
    const due = this.waiters.filter((w) => w.step === step && this.count(step) >= w.times);
    this.waiters = this.waiters.filter((w) => !due.includes(w));
    for (const waiter of due) waiter.resolve();
  }

  private run(stdout: OutputSink, stderr: OutputSink): void {
    const exit = deferred<number>();
    this.exit = exit;
    // A wait() abandoned on detach or a lost lock leaves this promise unobserved.
    exit.promise.catch(() => undefined);
    if (this.script.stdout !== undefined) stdout.write(this.script.stdout);
    if (this.script.stderr !== undefined) stderr.write(this.script.stderr);
    this.exited = false;
    if (!this.script.runsUntilExited) this.exitNow(this.script.exitCode ?? 0);
  }
}
