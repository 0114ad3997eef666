import type Dockerode from 'dockerode';
import type { Logger } from 'pino';
import { statusCodeOf } from '../../jobs/errors.js';
import type { ExecutorSpec } from '../executor.js';
import type { DockerHostFacts, DockerNaming } from './create-options.js';
import { isCommandNotFound, wrapEngineError } from './errors.js';
import type { ContainerWatch } from './events.js';
import type { NetnsHolder } from './netns/holders.js';
import type { OutputFollower } from './output-follower.js';
import type { DockerRuntime } from './runtime.js';

export interface MakeOptions {
  runtime: DockerRuntime;
  spec: ExecutorSpec;
  facts: DockerHostFacts;
  name?: string;
  labels?: Record<string, string>;
  logDriver: string;
  /** Join a namespace holder when the spec has no network. */
  reuseNetns: boolean;
  /** The image loadImage() found, and how to load it again if the engine lost it since. */
  image: { id: string; reload: () => Promise<string> };
  output: OutputFollower;
  /** Whether a kill the engine reports now was sent by the executor itself. */
  ownSignal: () => boolean;
  log: Logger;
}

/**
 * A container this executor made for a spec, attached and watched before it starts, with the
 * namespace holder it joins. Owns the one state between create and start that needs more than
 * a start: the holder gone meanwhile (it ended, or a daemon restart ended them all). The
 * container never ran then, so it is made once more with a live holder, and nothing is lost.
 */
export class MadeContainer {
  private holderLost = false;
  /**
   * Set when the engine already found the command missing while preparing the container for
   * attach (Podman runs the OCI create then): start() reports it, as Docker's start does.
   */
  private unstartable: unknown;

  private constructor(
    private readonly o: MakeOptions,
    public container: Dockerode.Container,
    public watch: ContainerWatch | undefined,
    private holder: NetnsHolder | null,
  ) {}

  /** Creates the container, then attaches to its output and watches its events, so no byte or event is missed. */
  static async make(o: MakeOptions): Promise<MadeContainer> {
    const holders = !o.spec.enableNetwork && o.reuseNetns ? o.runtime.holders : null;
    const holder = holders ? await holders.acquire(o.log) : null;
    const naming: DockerNaming = {
      name: o.name,
      labels: o.labels,
      logDriver: o.logDriver,
      netnsHolder: holder ?? undefined,
      imageId: o.image.id,
    };
    let container: Dockerode.Container;
    try {
      container = await createWithImage(o, naming);
    } catch (error) {
      if (holder) holders?.release(holder);
      throw wrapEngineError('creating', `cannot create container from ${o.spec.image}`, error);
    }
    o.log.debug({ containerId: container.id }, 'container created');
    const made = new MadeContainer(o, container, undefined, holder);
    try {
      const [, watch] = await Promise.all([
        o.output.attach(container, o.spec.stdin !== undefined),
        watchEvents(o, container),
      ]);
      made.watch = watch;
    } catch (error) {
      if (isCommandNotFound(error)) {
        made.unstartable = error;
        return made;
      }
      // The caller gets no container to close: remove it here, and give the holder back.
      await made.discard();
      made.releaseHolder();
      throw wrapEngineError('creating', 'cannot attach to the container output', error);
    }
    return made;
  }

  /** Starts it; when its holder is gone, makes it once more with a live one and starts that. */
  async start(): Promise<void> {
    if (this.unstartable !== undefined) throw this.unstartable;
    try {
      await this.container.start();
      return;
    } catch (error) {
      if (this.holderLost || !(await this.holderGone())) throw error;
    }
    this.holderLost = true;
    const holder = this.holder as NetnsHolder;
    this.o.log.info(
      { containerId: this.container.id, holderId: holder.id },
      'namespace holder gone; creating again',
    );
    // Every free holder went with it when the daemon restarted: forget them all.
    this.o.runtime.holders?.discard(holder, true);
    this.holder = null;
    await this.discard();
    const again = await MadeContainer.make(this.o);
    this.container = again.container;
    this.watch = again.watch;
    this.holder = again.holder;
    await this.container.start();
  }

  /** Gives the holder back for the next job; only once this container cannot run again. */
  releaseHolder(): void {
    if (this.holder) this.o.runtime.holders?.release(this.holder);
    this.holder = null;
  }

  /** The container keeps running without us, and its namespace with it: no other job may join that. */
  abandonHolder(): void {
    if (this.holder) this.o.runtime.holders?.discard(this.holder);
    this.holder = null;
  }

  /** Whether the holder this container was made to join no longer runs. */
  private async holderGone(): Promise<boolean> {
    if (!this.holder) return false;
    const state = await this.o.runtime.containerState(this.holder.id).catch(() => 'unknown');
    return state !== 'running' && state !== 'unknown';
  }

  /** Removes the never-started container and lets go of its connection and events. */
  private async discard(): Promise<void> {
    this.o.output.destroy();
    this.o.runtime.events.unwatch(this.container.id);
    await this.o.runtime
      .removeContainer(this.container.id)
      .catch((error: unknown) =>
        this.o.log.warn(
          { containerId: this.container.id, err: error },
          'removing the container that never started failed; it stays until removed (docker rm -f)',
        ),
      );
  }
}

/** Creates; if the engine lost the image since loadImage() saw it, loads it once more and retries. */
async function createWithImage(o: MakeOptions, naming: DockerNaming): Promise<Dockerode.Container> {
  try {
    return await o.runtime.createJobContainer(o.spec, naming, o.facts);
  } catch (error) {
    if (statusCodeOf(error) !== 404) throw error;
    const id = await o.image.reload();
    o.image = { ...o.image, id };
    return o.runtime.createJobContainer(o.spec, { ...naming, imageId: id }, o.facts);
  }
}

/** Subscribes to the container's engine events; without them the executor falls back to inspect. */
export async function watchEvents(
  o: Pick<MakeOptions, 'runtime' | 'ownSignal' | 'log'>,
  container: Dockerode.Container,
): Promise<ContainerWatch | undefined> {
  try {
    return await o.runtime.events.watch(container.id, o.ownSignal);
  } catch (error) {
    o.log.debug({ containerId: container.id, err: error }, 'no engine events; using inspect');
    return undefined;
  }
}

/** A container an earlier executor made, watched before it is looked at, so an exit in between is not missed. */
export async function takeOver(
  containerId: string,
  o: Pick<MakeOptions, 'runtime' | 'ownSignal' | 'log'>,
): Promise<{
  container: Dockerode.Container;
  watch: ContainerWatch | undefined;
  info: Dockerode.ContainerInspectInfo;
}> {
  const container = o.runtime.docker.getContainer(containerId);
  const watch = await watchEvents(o, container);
  try {
    return { container, watch, info: await container.inspect() };
  } catch (error) {
    o.runtime.events.unwatch(containerId);
    throw wrapEngineError('running', `cannot adopt container ${containerId}`, error);
  }
}
