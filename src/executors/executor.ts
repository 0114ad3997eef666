import type { Readable, Writable } from 'node:stream';

/**
 * The executor contract: a runtime-neutral container spec and the operations every container
 * runtime (Docker, Singularity/Apptainer) implements. Semantics follow Arvados crunch-run's
 * containerExecutor; see shared/DESIGN.md.
 */

export interface BindMount {
  hostPath: string;
  readOnly: boolean;
}

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
  /** 0 = no limit. */
  ramBytes: number;
  /** false = no network at all: only loopback, no default route. */
  enableNetwork: boolean;
  /** Docker network mode when the network is enabled; normally "default". */
  networkMode?: string;
  gpu?: { stack: 'cuda' | 'rocm'; deviceCount: number };
  cgroupParent?: string;
  stdin?: Readable;
  stdout: Writable;
  stderr: Writable;
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

export interface ExitDetails {
  /** The kernel killed the container for memory (the runtime's OOMKilled flag). */
  oomKilled: boolean;
}

/** One reading of a running container's resource use; fields are null where the runtime gives none. */
export interface UsageSample {
  cpuSeconds: number | null;
  memoryBytes: number | null;
  peakMemoryBytes: number | null;
  blockIoBytes: number | null;
  memoryLimitBytes: number | null;
}

export interface ContainerExecutor {
  /** Makes the image available; a no-op when it is already present. */
  loadImage(image: string, tarballPath?: string): Promise<void>;
  /** Creates the container without starting it. */
  create(spec: ExecutorSpec): Promise<void>;
  start(): Promise<void>;
  /** The exit code (128+N when killed by signal N); resolves only after stdout/stderr are drained. */
  wait(signal?: AbortSignal): Promise<number>;
  /** SIGTERM, then SIGKILL after graceMs (default 0: SIGKILL at once). Safe at any time. */
  stop(options?: { graceMs?: number }): Promise<void>;
  /** Releases everything the executor made (container, temp dirs). Idempotent. */
  close(): Promise<void>;
  /** What the runtime knows about how the container ended; call after wait(). */
  exitDetails(): Promise<ExitDetails>;
  /** Current resource use while the container runs; null when it is not running. */
  usage(): Promise<UsageSample | null>;
  /** The cgroup the container belongs to; '' before create. */
  cgroupId(): string;
  /** A process in the container; 0 when none runs. */
  pid(): Promise<number>;
  /** Name and version of the engine, e.g. "docker 20.10.24". */
  runtime(): Promise<string>;
  /** Gateway target: the container's address; rejects when it has no network. */
  ipAddress(): Promise<string>;
  /** Gateway target: runs a command inside the running container. */
  exec(command: string[], options?: ExecOptions): Promise<ExecResult>;
}
