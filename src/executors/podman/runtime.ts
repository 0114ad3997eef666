import Dockerode from 'dockerode';
import { type Logger, pino } from 'pino';
import { RuntimeUnavailableError } from '../../jobs/errors.js';
import {
  type DockerHostFacts,
  type DockerNaming,
  DockerRuntime,
  type DockerRuntimeOptions,
  type EngineInfo,
} from '../docker/index.js';
import type { ExecutorSpec } from '../executor.js';
import { toLibpodCreateSpec } from './create-spec.js';
import { PODMAN_ENGINE } from './engine.js';
import { findStaticInit } from './init.js';
import { isInitMissing, libpodCreate } from './libpod-create.js';
import { DEFAULT_SEARCH_PATH, findPodman, libpodInfo, PodmanService, pingSocket } from './service.js';
import { podmanSocketPath, podmanUnreachableMessage, rootlessRefusal } from './socket.js';

export interface PodmanRuntimeOptions
  extends Omit<DockerRuntimeOptions, 'client' | 'engine' | 'unreachable'> {
  /** The service's socket (STEVEDORE_PODMAN_SOCKET); podmanSocketPath()'s default when absent. */
  socket?: string;
  /** $XDG_RUNTIME_DIR, for the default socket of a rootless user. */
  xdgRuntimeDir?: string;
  /** The podman program, a name or a path (default "podman"), and the PATH it is looked up on. */
  binary?: string;
  searchPath?: string;
  /** Start `podman system service` when nothing serves the socket and the program is there (default true). */
  startService?: boolean;
  /** Where the start of a service, and a fallback to Podman's own init, are told. */
  logger?: Logger;
  /**
   * The init bound into jobs (a static tini); absent: the first of STATIC_INIT_CANDIDATES on
   * this host; null: Podman's catatonit.
   */
  initPath?: string | null;
}

type PodmanRuntimeSettings = Omit<DockerRuntimeOptions, 'client' | 'engine' | 'unreachable'> & {
  binary: string | null;
  initPath?: string | null;
  logger?: Logger;
};

/**
 * Podman through its Docker-compatible API: the Docker runtime with Podman's traits
 * (engine.ts), except that job containers are made through libpod's own create
 * (create-spec.ts), and, when nobody served the socket, the `podman system service` it started,
 * stopped again when it closes.
 */
export class PodmanRuntime extends DockerRuntime {
  private service: PodmanService | null = null;
  private initPath: string | null;
  private readonly log: Logger;

  constructor(
    readonly socket: string,
    options: PodmanRuntimeSettings,
  ) {
    const { binary, initPath: named, logger, ...docker } = options;
    const initPath = named === undefined ? findStaticInit() : named;
    super({
      ...docker,
      // No namespace holders: Podman makes a job that joins another container's namespace
      // depend on it, and then refuses to remove the holder ("has dependent containers") while
      // the job's container exists; its compatible import also drops the holder image's tag.
      // Every job without network gets a namespace of its own ('none').
      netns: 'fresh',
      client: new Dockerode({ socketPath: socket }),
      engine: PODMAN_ENGINE,
      unreachable: (_address, error) => podmanUnreachableMessage(socket, error, binary),
    });
    this.initPath = initPath;
    this.log = logger ?? pino({ level: 'silent' });
  }

  /**
   * Through libpod's create, never the Docker-compatible one: Podman 4.3's compatible create
   * turns structured mounts back into `type=bind,source=…,target=…` text (a `,source=/` in a
   * path binds the host's `/`) and adds `container` and `TERM` to every job's env.
   */
  override async createJobContainer(
    spec: ExecutorSpec,
    naming: DockerNaming,
    facts: DockerHostFacts,
  ): Promise<Dockerode.Container> {
    // The image's env stays beneath the spec's, as on Docker (unsetenvall drops it otherwise).
    const image = await this.docker.getImage(naming.imageId ?? spec.image).inspect();
    const imageEnv = image.Config?.Env ?? [];
    const initPath = this.initPath;
    const body = toLibpodCreateSpec(spec, naming, { ...facts, imageEnv, initPath: initPath ?? undefined });
    try {
      return this.docker.getContainer(await libpodCreate(this.docker, body));
    } catch (error) {
      if (!initPath || !isInitMissing(error)) throw error;
      // The worker sees a tini that Podman's host does not (a worker in a container, say).
      this.initPath = null;
      this.log.warn(
        { initPath, err: error },
        "Podman's host has no init at this path; jobs run under Podman's catatonit, where a missing command exits 1, not 127",
      );
      const { init_path: _, ...again } = body;
      return this.docker.getContainer(await libpodCreate(this.docker, again));
    }
  }

  /**
   * libpod's own /info, not the Docker-compatible one: it also says whether the service is
   * rootless, which the refusal at open reads, so one call serves every reader.
   */
  protected override askEngineInfo(): Promise<EngineInfo> {
    return libpodInfo(this.socket);
  }

  /**
   * The init jobs run under: a static tini's path, or null for Podman's own catatonit (then a
   * command missing from the image exits 1, where tini's exit is 127 as on Docker).
   */
  get init(): string | null {
    return this.initPath;
  }

  /** The service this runtime started; null when it uses one that was running. */
  get startedService(): PodmanService | null {
    return this.service;
  }

  /** @internal */
  adoptService(service: PodmanService): void {
    this.service = service;
  }

  override async close(): Promise<void> {
    await super.close();
    await this.service?.stop();
  }
}

/**
 * Opens Podman for a worker: the socket's service, started when the socket is missing or stale
 * and the program is there; then checked as Docker is. Rejects with RuntimeUnavailableError.
 */
export async function openPodmanRuntime(options: PodmanRuntimeOptions = {}): Promise<PodmanRuntime> {
  const { socket: named, xdgRuntimeDir, binary: name, searchPath, startService, logger, ...rest } = options;
  const socket = podmanSocketPath(named, xdgRuntimeDir);
  const binary = findPodman(name, searchPath ?? DEFAULT_SEARCH_PATH);
  const runtime = new PodmanRuntime(socket, { ...rest, binary, logger });
  try {
    const down = await pingSocket(socket).then(
      () => null,
      (error: NodeJS.ErrnoException) => error,
    );
    // Nobody listens (no socket, or one a dead service left): start ours. Anything else is a
    // service that runs but fails, which a second one would not fix.
    if (
      down &&
      (down.code === 'ENOENT' || down.code === 'ECONNREFUSED') &&
      binary &&
      startService !== false
    ) {
      const service = await PodmanService.start(binary, socket, logger ?? pino({ level: 'silent' })).catch(
        (error: Error) => {
          throw new RuntimeUnavailableError('podman', error.message, { cause: error });
        },
      );
      runtime.adoptService(service);
    }
    await runtime.checkAvailable();
    const refusal = rootlessRefusal(await runtime.engineInfo(), socket);
    if (refusal) throw new RuntimeUnavailableError('podman', refusal);
    await runtime.tidy();
  } catch (error) {
    await runtime.close();
    throw error;
  }
  return runtime;
}
