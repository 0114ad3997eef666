import Dockerode from 'dockerode';
import { type Logger, pino } from 'pino';
import { RuntimeUnavailableError } from '../../jobs/errors.js';
import { DockerRuntime, type DockerRuntimeOptions } from '../docker/index.js';
import { PODMAN_ENGINE } from './engine.js';
import { DEFAULT_SEARCH_PATH, findPodman, PodmanService, pingSocket, podmanHostFacts } from './service.js';
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
  /** Where the start of a service is told. */
  logger?: Logger;
}

/**
 * Podman through its Docker-compatible API: the Docker runtime with Podman's traits
 * (engine.ts), and, when nobody served the socket, the `podman system service` it started,
 * stopped again when it closes.
 */
export class PodmanRuntime extends DockerRuntime {
  private service: PodmanService | null = null;

  constructor(
    readonly socket: string,
    options: Omit<DockerRuntimeOptions, 'client' | 'engine' | 'unreachable'> & { binary: string | null },
  ) {
    const { binary, ...docker } = options;
    super({
      ...docker,
      client: new Dockerode({ socketPath: socket }),
      engine: PODMAN_ENGINE,
      unreachable: (_address, error) => podmanUnreachableMessage(socket, error, binary),
    });
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
  const runtime = new PodmanRuntime(socket, { ...rest, binary });
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
    const refusal = rootlessRefusal(await podmanHostFacts(socket), socket);
    if (refusal) throw new RuntimeUnavailableError('podman', refusal);
    await runtime.tidy();
  } catch (error) {
    await runtime.close();
    throw error;
  }
  return runtime;
}
