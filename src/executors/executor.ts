import type { Readable, Writable } from 'node:stream';
import type { ExecCommand } from '../jobs/gateway/handshake.js';
import type { ImagePullPolicy } from '../jobs/image-ref.js';
import type { PullProgress } from '../jobs/progress.js';
import type { RuntimeCapabilities } from './runtime.js';

export type { ImagePullPolicy, PullProgress };

/**
 * The executor contract, after Arvados crunch-run's containerExecutor (docs/architecture.md): one
 * executor runs one container, on a runtime opened once per worker (runtime.ts). In order:
 * loadImage → create → start → wait → close; stop at any time; adopt instead of create + start.
 * A non-zero exit is data (wait() resolves with it), never an executor error. The two
 * interfaces come first; the types after them are the values that cross them.
 */
export interface ContainerExecutor extends GatewayTarget {
  /** What this runtime can do; constant for the executor's life. */
  readonly capabilities: RuntimeCapabilities;
  /** The container's id in the runtime; '' before create() or adopt(). */
  readonly containerId: string;
  /**
   * Makes the image available by the request's pull policy and says which image that is. Rejects
   * with ImageUnavailableError when it cannot be had (never worth a retry), InfrastructureError
   * when the runtime or registry failed or timed out.
   */
  loadImage(request: ImageRequest): Promise<LoadedImage>;
  /** Creates the container, not started, from exactly `image` (what loadImage() returned for spec.image). */
  create(spec: ExecutorSpec, image: LoadedImage): Promise<void>;
  /** Starts the created container; rejects with CommandNotFoundError when the command is not in the image (no init). */
  start(): Promise<void>;
  /** The exit code (128+N when killed by signal N); resolves only after stdout/stderr are drained. */
  wait(signal?: AbortSignal): Promise<number>;
  /**
   * SIGTERM, then SIGKILL after graceMs (default 0: SIGKILL at once). Safe at any time. Says whether
   * a signal reached a live process: not when the container had already exited (by itself, so its
   * exit code is its own answer) or never ran.
   */
  stop(options?: { graceMs?: number }): Promise<StopOutcome>;
  /** Releases everything the executor made (container, temp dirs). Idempotent. */
  close(): Promise<void>;
  /** What the runtime knows about how the container ended; call after wait(). */
  exitDetails(): Promise<ExitDetails>;
  /** Current resource use while the container runs; null when it is not running. */
  usage(): Promise<UsageSample | null>;
  /** Final counters of the run; call after wait(). Never rejects: what it cannot read is null, with why. */
  finalUsage(): Promise<FinalUsage>;
  /** The cgroup the container belongs to; '' before create. */
  cgroupId(): string;
  /** Name and version of the engine, e.g. "docker 20.10.24". */
  runtime(): Promise<string>;
  /**
   * Takes over a container an earlier executor created and let go of (its worker crashed or
   * detached) instead of create() + start(); then wait() as usual. Output is replayed from the
   * runtime's copy when it keeps one, skipping `alreadyKept`. Rejects unless capabilities.adopt.
   */
  adopt(
    containerId: string,
    output: { stdout: OutputSink; stderr: OutputSink },
    alreadyKept: StreamCounts,
  ): Promise<Adoption>;
  /** Lets go of a running container without stopping or removing it (it is left for adoption). */
  detach(): void;
  /** Runtime outages the container lived through, and was taken back after. */
  reattachments(): readonly Reattachment[];
}

/**
 * The running container as the exec gateway reaches it (crunch-run's GatewayTarget); the gateway
 * is built on this and nothing else of the executor. exec() and ipAddress() need capabilities.exec.
 */
export interface GatewayTarget {
  /** Runs a command inside the running container; rejects when it is not running. */
  exec(command: string[], options?: ExecOptions): Promise<ExecResult>;
  /** The same with live streams and an optional terminal (`stevedore exec`); the exit code after output drains. */
  execStream(request: ExecStreamRequest): Promise<ExecStream>;
  /** The container's address; rejects when it has no network. */
  ipAddress(): Promise<string>;
  /**
   * A process in the container, as this host's PID namespace numbers it, and in the container's
   * mount namespace (the worker reads `/proc/<pid>/root` to check what got mounted); 0 when none runs.
   */
  pid(): Promise<number>;
}

/** What stop() did. */
export interface StopOutcome {
  /** A signal reached the container's live process; false when it had already exited or never ran. */
  signalled: boolean;
}

/** A command to run in a running container for the gateway (`stevedore exec`): the request's own shape. */
export type ExecStreamRequest = ExecCommand;

/** A command running inside a container, streamed. */
export interface ExecStream {
  /** The command's stdin; null when the request did not keep it open. */
  stdin: Writable | null;
  /** stdout, or the terminal's one stream with a tty. */
  stdout: Readable;
  /** null with a tty (the terminal merges both streams). */
  stderr: Readable | null;
  /** Tells the terminal its new size; a no-op without a tty. */
  resize(size: { cols: number; rows: number }): Promise<void>;
  /** The exit code, once the command ended and its output is drained. */
  exitCode: Promise<number>;
}

/** What create() runs: crunch-run's containerSpec. */
export interface ExecutorSpec {
  image: string;
  command: string[];
  /** Exactly this environment: nothing is inherited from the worker. */
  env: Record<string, string>;
  /** Absolute path; empty or '.' means the image's default. */
  workingDir?: string;
  /** Key: the path inside the container. */
  bindMounts: Record<string, BindMount>;
  /** 0 = no limit. */
  vcpus: number;
  /** 0 = no limit; less than MIN_MEMORY_BYTES (limits.ts) is raised to it. */
  ramBytes: number;
  /** false = no network at all: only loopback, no default route. */
  enableNetwork: boolean;
  /** Docker network mode when the network is enabled; normally "default". */
  networkMode?: string;
  gpu?: { stack: 'cuda' | 'rocm'; deviceCount: number };
  cgroupParent?: string;
  /** Run the command under the runtime's init process (signals forwarded, zombies reaped). */
  init?: boolean;
  /** Most processes and threads the container may hold at once; absent = DEFAULT_PIDS_LIMIT (limits.ts), never unlimited. */
  pidsLimit?: number;
  stdin?: Readable;
  stdout: OutputSink;
  stderr: OutputSink;
}

export interface BindMount {
  hostPath: string;
  readOnly: boolean;
}

/**
 * Where a container's output goes. A sink that offers `writeCopy` copies what it keeps before
 * returning, so the runtime may read into one reused buffer; the bytes are the same either way.
 */
export interface OutputSink extends Writable {
  /** Takes a view that is valid only during the call; false = wait for 'drain'. */
  writeCopy?(view: Buffer): boolean;
}

/** Which image, and from where: what loadImage() is asked for, and what a LoadedImage answers. */
export interface ImageSpec {
  image: string;
  /** A `docker save` tarball to load the image from instead of a registry. */
  tarballPath?: string;
  /** if-not-present: pull when absent; always: pull every time (a digest already present excepted); never: fail when absent. */
  pullPolicy: ImagePullPolicy;
}

/** What loadImage() is asked for: the image, and how this one call reports and gives up. */
export interface ImageRequest extends ImageSpec {
  /** Called as a pull moves (this job's or the one it waits on). */
  onProgress?: (progress: PullProgress) => void;
  /** Aborted: stop waiting (a pull other jobs wait on goes on). */
  signal?: AbortSignal;
}

/** Which image a container runs, as the result reports it. */
export interface ImageIdentity {
  /** The engine's id of the image (sha256:…). */
  imageId: string;
  /** The repo digest (name@sha256:…) when the image came from a registry; null otherwise. */
  imageDigest: string | null;
}

/** What loadImage() did; create() takes it and runs exactly that image. */
export interface LoadedImage extends ImageIdentity {
  /** What was asked for: create() loads it the same way again if the runtime lost the image since. */
  request: ImageSpec;
  source: 'present' | 'registry' | 'tarball';
  /** Set when the image was pulled for this call, or by a pull it waited on. */
  pull: { durationMs: number; bytes: number; layers: number; shared: boolean } | null;
  /** Images the runtime's own image cache removed to make room for this one (Apptainer's SIF cache); absent: none. */
  evicted?: CacheEviction[];
}

/** One image a runtime's cache removed, for events.log: which, how big, and why. */
export interface CacheEviction {
  /** The image's digest (sha256:…), the cache's key. */
  imageId: string;
  /** The references it had been loaded under. */
  references: string[];
  bytes: number;
  lastUsedAt: string;
  reason: string;
}

export interface ExitDetails {
  /** The kernel killed the container for memory (the runtime's OOMKilled flag). */
  oomKilled: boolean;
  /**
   * Null when every byte of output was drained; otherwise why the rest was not (the exit came by
   * another path than the output's end, and the output stream did not end in time after it).
   */
  outputCut: string | null;
  /** Limits of the spec the runtime could not apply on this host, each with why; empty when all held. */
  notApplied: string[];
}

/** One reading of a running container's resource use; fields are null where the runtime gives none. */
export interface UsageSample {
  cpuSeconds: number | null;
  memoryBytes: number | null;
  peakMemoryBytes: number | null;
  blockIoBytes: number | null;
  memoryLimitBytes: number | null;
}

/**
 * The whole run's resource use, read after wait() from counters that outlive the container
 * (exact also for a job of a few milliseconds). A null field is one the runtime could not read.
 */
export interface FinalUsage {
  cpuSeconds: number | null;
  peakMemoryBytes: number | null;
  blockIoBytes: number | null;
  /** Why some field is null, for events.log; null when every counter was read. */
  missing: string | null;
}

/** Bytes of each stream an output already holds (skipped when output is replayed). */
export interface StreamCounts {
  stdout: number;
  stderr: number;
}

/** What an adopting executor found when it took over a container. */
export interface Adoption {
  /** Whether the container was still running. */
  running: boolean;
  /** Whether its output was replayed from the runtime's own copy (no byte lost). */
  replayed: boolean;
  /** The image it runs; null when the runtime cannot tell. */
  image: ImageIdentity | null;
}

/** The connection to the runtime broke under a running container and the executor took it back. */
export interface Reattachment {
  at: string;
  /** Whether the container was still running when the runtime came back. */
  running: boolean;
  /** Whether its output was replayed from the runtime's copy (no bytes lost). */
  replayed: boolean;
}

export interface ExecOptions {
  /** User (name or uid[:gid]) to run as inside the container. */
  user?: string;
  stdin?: string | Buffer;
  signal?: AbortSignal;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}
