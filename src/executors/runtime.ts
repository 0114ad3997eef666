/**
 * The runtime side of the contract: one container runtime on this host, opened once per worker
 * (`openRuntime(kind)` in index.ts) and shared by the executors made on it, one per container
 * (executor.ts). Recovery uses it to find and remove containers without knowing which runtime it is.
 */

/**
 * One runtime on this host, opened once per worker and shared by all its executors (connection,
 * caches, subscriptions); closed when the worker closes.
 */
export interface ContainerRuntime {
  readonly kind: RuntimeKind;
  readonly capabilities: RuntimeCapabilities;
  /** Name and version of the engine, e.g. "docker 20.10.24" or "podman 4.3.1". */
  version(): Promise<string>;
  /**
   * Names the engine that holds this runtime's containers: the same across its restarts, another
   * for another host's engine. A job's progress keeps it, so only a worker on that engine adopts
   * the job's container, and workers elsewhere wait for that host (worker/recovery/handover.ts).
   */
  engineId(): Promise<string>;
  /** Rejects, saying what to do, when the engine does not answer now (start-up, readiness probes). */
  checkAvailable(): Promise<void>;
  /** Every container, running or not, that carries all of `labels`. */
  listContainers(labels: Record<string, string>): Promise<RuntimeContainer[]>;
  /** The container's state now; null when it is gone. */
  containerState(id: string): Promise<string | null>;
  /** Removes a container, running or not, with its anonymous volumes; one already gone counts as removed. */
  removeContainer(id: string): Promise<void>;
  /**
   * Why this runtime cannot take `path` (a mount's host path or container path) literally, or null
   * when it can. Admission refuses such a spec as invalid, naming the field, before anything runs.
   */
  mountPathProblem(path: string): string | null;
  /**
   * Host paths holding the engine's own data (image layers, containers' file systems, records,
   * caches), as the engine names them: Docker's `DockerRootDir`, Podman's graph root, Apptainer's
   * SIF cache. The worker never lets a job bind them or anything holding them.
   */
  dataPaths(): Promise<string[]>;
  /** Releases what the runtime holds (pools, subscriptions). Idempotent. */
  close(): Promise<void>;
}

/**
 * The runtimes a worker can be told to use (STEVEDORE_RUNTIME, a spec's `runtime`): every kind
 * openRuntime() opens. Tests iterate this list (the hostile suite fails for a kind it has no entry for).
 */
export const RUNTIME_KINDS = ['docker', 'podman', 'singularity'] as const;
export type RuntimeKind = (typeof RUNTIME_KINDS)[number];

/** What a runtime can do beyond the lifecycle; the worker asks these, never probes for methods. */
export interface RuntimeCapabilities {
  /** A container outlives its worker, and another executor on the host can adopt() it. */
  adopt: boolean;
  /** The executor's GatewayTarget works on a running container: exec() and ipAddress(). */
  exec: boolean;
}

/** A container the runtime holds, as the worker's recovery sees it. */
export interface RuntimeContainer {
  id: string;
  labels: Record<string, string>;
  /** The runtime's word for its state; "created" means it never started. */
  state: string;
  /** When it was created (ms since epoch). */
  createdAt: number;
}
