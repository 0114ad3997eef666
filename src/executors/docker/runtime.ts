import { existsSync } from 'node:fs';
import Dockerode from 'dockerode';
import { RuntimeUnavailableError } from '../../jobs/errors.js';
import { LABELS } from '../../jobs/names.js';
import type { ExecutorSpec } from '../executor.js';
import type { RegistryCredentials } from '../registry-auth.js';
import type { ContainerRuntime, RuntimeCapabilities, RuntimeContainer, RuntimeKind } from '../runtime.js';
import type { ModemSettings } from './attach/raw-attach.js';
import { JobCgroups } from './cgroup.js';
import { type DockerHostFacts, type DockerNaming, toDockerCreateOptions } from './create-options.js';
import { DOCKER_ENGINE, type EngineTraits } from './engine.js';
import { engineAddress, engineUnreachableMessage } from './engine-check.js';
import { type DockerInfoFields, type EngineInfo, engineInfoOf } from './engine-info.js';
import { isAlreadyInState, isGone } from './errors.js';
import { DockerEvents } from './events.js';
import { DockerImages } from './images.js';
import { HOLDER_LABEL, type NetnsHolderOptions, NetnsHolders } from './netns/holders.js';
import type { PullSettings } from './pull.js';

/** How long the availability check waits for the engine's ping before the worker gives up starting. */
const PING_TIMEOUT_MS = 10_000;

/** What every executor of one runtime runs with, unless its own options say otherwise. */
export interface DockerRunDefaults {
  /** Docker log driver of job containers. */
  logDriver?: string;
  /** How long the daemon may be unreachable before a run fails (it may come back after a restart). */
  engineOutageMs?: number;
  /** GPU selection handed down from the worker's configuration. */
  visibleDevices?: { cuda?: string; amd?: string };
  /** How often wait() checks that the daemon still answers. */
  watchdogIntervalMs?: number;
  /** How long wait() drains output once the exit code came from inspect (OUTPUT_DRAIN_AFTER_INSPECT_MS). */
  outputDrainMs?: number;
  /** Set from the engine's traits (EngineTraits.exitFromDieEvent). */
  exitFromDieEvent?: boolean;
  /** Set from the engine's traits (EngineTraits.keepsContainers). */
  keepsContainers?: 'if-live-restore' | 'always';
}

export interface DockerRuntimeOptions extends DockerRunDefaults {
  /** The engine client; a default one (DOCKER_HOST or the local socket) when absent. */
  client?: Dockerode;
  /** How this engine differs (Podman's API: ../podman/engine.ts); DOCKER_ENGINE when absent. */
  engine?: EngineTraits;
  /** The one line for an engine that does not answer; Docker's (engine-check.ts) when absent. */
  unreachable?: (address: string, error: NodeJS.ErrnoException) => string;
  /**
   * `reuse` (default): jobs without network take turns in loopback-only namespaces of holders
   * (netns/holders.ts); `fresh`: each gets a namespace of its own and no holder is made.
   */
  netns?: 'reuse' | 'fresh';
  /** Labels and lifetime of the namespace holders. */
  holders?: NetnsHolderOptions;
  /**
   * The worker this runtime serves: its holders are labelled with its queue, id and deployment
   * (see HOLDER_LABEL), and its per-job cgroups sit under the deployment's own parent, so a
   * sweep leaves other deployments' alone.
   */
  owner?: { queue: string; workerId: string; deployment?: string };
  /** Registry credentials for pulls; none: pulls are anonymous. */
  credentials?: RegistryCredentials;
  /** Pull timeouts (STEVEDORE_PULL_TIMEOUT_MS, _STALL_MS); their defaults when absent. */
  pull?: Partial<PullSettings>;
}

/**
 * One Docker engine as a worker uses it: the client with its connection pool, the namespace
 * holders, the engine's event subscription, the image loader and the engine's version, shared
 * by every DockerExecutor passed this object. Whoever makes it closes it.
 */
export class DockerRuntime implements ContainerRuntime {
  readonly kind: RuntimeKind;
  readonly capabilities: RuntimeCapabilities;
  readonly engine: EngineTraits;
  readonly docker: Dockerode;
  readonly events: DockerEvents;
  readonly images: DockerImages;
  /** Per-job parent cgroups, whose counters outlive the container (final usage). */
  readonly cgroups: JobCgroups;
  /** Null when namespaces are not reused. */
  readonly holders: NetnsHolders | null;
  readonly defaults: DockerRunDefaults;
  private versionName: Promise<string> | undefined;
  private info: Promise<EngineInfo> | undefined;
  private closed = false;
  private readonly unreachable: DockerRuntimeOptions['unreachable'];

  constructor(options: DockerRuntimeOptions = {}) {
    this.engine = options.engine ?? DOCKER_ENGINE;
    this.kind = this.engine.kind;
    this.capabilities = this.engine.capabilities;
    this.unreachable = options.unreachable;
    this.docker = options.client ?? new Dockerode();
    this.events = new DockerEvents(this.docker, this.engine.filtersEventActions);
    this.images = new DockerImages(this.docker, { credentials: options.credentials, pull: options.pull });
    this.cgroups = new JobCgroups(
      async () => (await this.engineInfo()).cgroups,
      undefined,
      options.owner?.deployment,
    );
    const owner: Record<string, string> = options.owner
      ? {
          [HOLDER_LABEL]: options.owner.queue,
          [LABELS.workerId]: options.owner.workerId,
          ...(options.owner.deployment ? { [LABELS.deployment]: options.owner.deployment } : {}),
        }
      : {};
    const holderOptions = { ...options.holders, labels: { ...owner, ...options.holders?.labels } };
    this.holders = options.netns === 'fresh' ? null : new NetnsHolders(this.docker, holderOptions);
    this.defaults = {
      logDriver: options.logDriver ?? this.engine.defaultLogDriver,
      engineOutageMs: options.engineOutageMs,
      visibleDevices: options.visibleDevices,
      watchdogIntervalMs: options.watchdogIntervalMs,
      outputDrainMs: options.outputDrainMs,
      exitFromDieEvent: this.engine.exitFromDieEvent,
      keepsContainers: this.engine.keepsContainers,
    };
  }

  /** Rejects with what to do when the engine does not answer (a worker checks this before taking jobs). */
  async checkAvailable(): Promise<void> {
    try {
      // dockerode takes an abortSignal here; @types/dockerode 4 does not list the options.
      const ping = this.docker.ping as unknown as (options: { abortSignal: AbortSignal }) => Promise<unknown>;
      await ping.call(this.docker, { abortSignal: AbortSignal.timeout(PING_TIMEOUT_MS) });
    } catch (error) {
      const address = await engineAddress(this.docker.modem as ModemSettings);
      const cause = error as NodeJS.ErrnoException;
      const message = this.unreachable
        ? this.unreachable(address, cause)
        : engineUnreachableMessage(address, cause, existsSync('/run/systemd/system'));
      throw new RuntimeUnavailableError(this.kind, message, { cause: error });
    }
  }

  /** Asked once per runtime rather than once per job; asked again after a failure. */
  version(): Promise<string> {
    if (!this.versionName) {
      const name = this.docker.version().then((v) => `${this.engine.versionName} ${v.Version}`);
      name.catch(() => {
        if (this.versionName === name) this.versionName = undefined;
      });
      this.versionName = name;
    }
    return this.versionName;
  }

  /**
   * Creates a job's container, not started: the Engine API's create with the body of
   * toDockerCreateOptions(). A runtime on another API (Podman's libpod) makes it its own way,
   * with the same hardening.
   */
  async createJobContainer(
    spec: ExecutorSpec,
    naming: DockerNaming,
    facts: DockerHostFacts,
  ): Promise<Dockerode.Container> {
    return this.docker.createContainer(toDockerCreateOptions(spec, naming, facts));
  }

  /** Mounts reach the engine as structured `HostConfig.Mounts` entries (create-options.ts): taken literally. */
  mountPathProblem(_path: string): string | null {
    return null;
  }

  async listContainers(labels: Record<string, string>): Promise<RuntimeContainer[]> {
    const found = await this.docker.listContainers({
      all: true,
      filters: { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) },
    });
    return found.map((c) => ({ id: c.Id, labels: c.Labels, state: c.State, createdAt: c.Created * 1000 }));
  }

  async containerState(id: string): Promise<string | null> {
    try {
      return (await this.docker.getContainer(id).inspect()).State.Status;
    } catch (error) {
      if (isGone(error)) return null;
      throw error;
    }
  }

  async removeContainer(id: string): Promise<void> {
    const container = this.docker.getContainer(id);
    const parent = await container.inspect().then(
      (info) => info.HostConfig.CgroupParent,
      () => undefined,
    );
    try {
      await container.remove({ force: true, v: true });
    } catch (error) {
      // Gone already, or its removal is under way (409): either way it will not be there.
      if (!isGone(error) && !isAlreadyInState(error)) throw error;
    }
    // Its per-job parent cgroup would outlive it otherwise; an empty directory left is harmless.
    if (this.cgroups.owns(parent)) await this.cgroups.remove(parent).catch(() => undefined);
  }

  /** The engine's root (`DockerRootDir`: Docker's /var/lib/docker; Podman's graph root). */
  async dataPaths(): Promise<string[]> {
    const { dataRoot } = await this.engineInfo();
    return dataRoot.startsWith('/') ? [dataRoot] : [];
  }

  /**
   * The engine's host name and data root. Not the engine's ID: Docker 20.10 derives it from a key
   * in /etc/docker, so two daemons on one host share it, and Podman's service makes a new one each
   * time it starts, so a restarted service would look like another host.
   */
  async engineId(): Promise<string> {
    const { hostName, dataRoot } = await this.engineInfo();
    return `${hostName || 'unknown-host'}:${dataRoot}`;
  }

  /**
   * The engine's /info, asked once per runtime rather than once per reader (engineId, dataPaths,
   * the per-job cgroups' layout); asked again after a failure.
   */
  engineInfo(): Promise<EngineInfo> {
    if (!this.info) {
      const info = this.askEngineInfo();
      info.catch(() => {
        if (this.info === info) this.info = undefined;
      });
      this.info = info;
    }
    return this.info;
  }

  /** One call of the engine's /info; Podman's runtime asks libpod's own instead. */
  protected async askEngineInfo(): Promise<EngineInfo> {
    // dockerode takes an abortSignal here; @types/dockerode 4 does not list the options.
    const info = this.docker.info as unknown as (options: { abortSignal: AbortSignal }) => Promise<unknown>;
    const answer = await info.call(this.docker, { abortSignal: AbortSignal.timeout(PING_TIMEOUT_MS) });
    return engineInfoOf(answer as DockerInfoFields);
  }

  /** Housekeeping when a worker opens the runtime: parent cgroups that removed containers left. */
  async tidy(): Promise<void> {
    await this.cgroups.sweep().catch(() => 0);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.events.close();
    await this.holders?.close();
  }
}
