import { join } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../config/errors.js';
import type { WorkerConfig } from '../config/worker.js';
import type { RuntimeOptions } from '../executors/index.js';
import { RegistryAuthError, RegistryCredentials } from '../executors/registry-auth.js';

/** The registry credentials file, read now: a bad one stops the worker here, naming the file and entry. */
export function readCredentials(
  config: Pick<WorkerConfig, 'registryAuth'>,
  logger: Logger,
): RegistryCredentials {
  try {
    return RegistryCredentials.load(config.registryAuth.path, {
      required: config.registryAuth.required,
      onReloadError: (message) => logger.warn({ registryAuth: config.registryAuth.path }, message),
    });
  } catch (error) {
    if (error instanceof RegistryAuthError) throw new ConfigError(error.message);
    throw error;
  }
}

/** What the worker learned at start that every runtime needs beside its configuration. */
export interface RuntimeContext {
  /** The deployment's id (deploymentId): on the runtime's namespace holders and cgroups. */
  deployment: string;
  credentials: RegistryCredentials;
  logger: Logger;
}

/**
 * The settings openRuntime() gets, for whichever runtime the worker runs (only that one's are
 * read), all assembled here. `extra` (WorkerDeps.runtimeOptions: a docker client, say) wins.
 */
export function runtimeOptions(
  config: WorkerConfig,
  context: RuntimeContext,
  extra: RuntimeOptions = {},
): RuntimeOptions {
  const { deployment, credentials, logger } = context;
  const visibleDevices = { cuda: config.cudaVisibleDevices, amd: config.amdVisibleDevices };
  // Podman is Docker's runtime over Podman's API: the same settings, and its socket.
  const engineSettings = {
    logDriver: config.logDriver,
    engineOutageMs: config.engineOutageMs,
    visibleDevices,
    netns: config.netns,
    owner: { queue: config.queue, workerId: config.workerId, deployment },
    credentials,
    pull: { timeoutMs: config.pullTimeoutMs, stallMs: config.pullStallMs },
  };
  return {
    ...extra,
    docker: { ...engineSettings, ...extra.docker },
    podman: {
      ...engineSettings,
      socket: config.podmanSocket,
      searchPath: config.searchPath,
      logger,
      ...extra.podman,
    },
    singularity: {
      ...config.singularity,
      stateDir: join(config.stateDir, 'singularity'),
      credentials,
      visibleDevices,
      ...extra.singularity,
    },
  };
}
