import type Dockerode from 'dockerode';
import type { Logger } from 'pino';
import { LABELS } from '../../../jobs/names.js';
import { ensureHolderImage, HOLDER_ENTRYPOINT } from './holder-image.js';

/**
 * Network namespaces for jobs without network, made once and used by one job after another.
 *
 * A fresh network namespace is most of what a trivial container costs the host (a setup hook
 * in dockerd and the kernel's teardown; BENCHMARKS.md, "holder"). A holder is a tiny container with no network whose
 * only process sleeps; a job joins its namespace (`container:<holder>`), which holds nothing
 * but loopback. A holder serves one job at a time, so jobs never share a namespace while they
 * run; its /etc/hosts, /etc/hostname and /etc/resolv.conf are bound read-only into the job, so
 * no job leaves anything there for the next. A holder's process ends by itself after its
 * lifetime and the engine removes it then (AutoRemove), so what a crashed worker leaves behind
 * goes away without anyone cleaning up.
 */

export const HOLDER_LABEL = LABELS.netnsHolder;
/** How long a holder lives; a worker makes a new one per slot this often. */
export const DEFAULT_HOLDER_LIFETIME_S = 600;
/** A holder with less life left than this is not handed out: the job's start must come before its end. */
const MAX_MARGIN_MS = 60_000;
/** After the holder image could not be made, fresh namespaces are used for this long before trying again. */
const IMAGE_RETRY_MS = 60_000;

export interface NetnsHolder {
  id: string;
  /** The engine's host paths of the holder's network files, bound read-only into its jobs. */
  files: { hosts: string; hostname: string; resolvConf: string };
  expiresAt: number;
}

export interface NetnsHolderOptions {
  /** Labels every holder carries (the worker sets HOLDER_LABEL to its queue and adds its id). */
  labels?: Record<string, string>;
  lifetimeSeconds?: number;
}

/** The holders of one DockerRuntime (one worker): made by it, closed with it. */
export class NetnsHolders {
  private readonly free: NetnsHolder[] = [];
  private readonly inUse = new Set<NetnsHolder>();
  private image: Promise<string | null> | undefined;
  private imageRetryAt = 0;
  private closed = false;
  private readonly lifetimeSeconds: number;
  private readonly marginMs: number;

  constructor(
    private readonly docker: Dockerode,
    private readonly options: NetnsHolderOptions = {},
  ) {
    this.lifetimeSeconds = options.lifetimeSeconds ?? DEFAULT_HOLDER_LIFETIME_S;
    this.marginMs = Math.min(MAX_MARGIN_MS, (this.lifetimeSeconds * 1000) / 4);
  }

  /** How many holders exist now (free and in use). */
  get size(): number {
    return this.free.length + this.inUse.size;
  }

  /**
   * A holder no job uses now, made when none is free. Null when there can be none (not an
   * x86-64 engine, the pool is closed, or the engine refused): the job then gets a namespace
   * of its own, as with sharing off.
   */
  async acquire(log: Logger): Promise<NetnsHolder | null> {
    if (this.closed) return null;
    for (let holder = this.free.pop(); holder; holder = this.free.pop()) {
      if (this.lastsLongEnough(holder)) {
        this.inUse.add(holder);
        return holder;
      }
      this.remove(holder);
    }
    try {
      const image = await this.holderImage();
      if (!image) return null;
      const holder = await this.make(image, log);
      if (this.closed) {
        this.remove(holder);
        return null;
      }
      this.inUse.add(holder);
      log.debug({ holderId: holder.id }, 'network namespace holder made');
      return holder;
    } catch (error) {
      log.warn(
        { err: error },
        'could not make a network namespace holder; this job gets a network namespace of its own',
      );
      return null;
    }
  }

  /** The job that used `holder` ended: the next job may take it. */
  release(holder: NetnsHolder): void {
    if (!this.inUse.delete(holder)) return;
    if (this.closed || !this.lastsLongEnough(holder)) this.remove(holder);
    else this.free.push(holder);
  }

  /** Whether `holder` has life enough left to be handed to a job (its start must come first). */
  private lastsLongEnough(holder: NetnsHolder): boolean {
    return holder.expiresAt - this.marginMs > Date.now();
  }

  /** `holder` is gone or unusable (the engine said so): forget it, and every free one with it if asked. */
  discard(holder: NetnsHolder, alsoFree = false): void {
    this.inUse.delete(holder);
    this.remove(holder);
    if (alsoFree) for (const h of this.free.splice(0)) this.remove(h);
  }

  /** Removes every holder; jobs still running keep their namespace (their processes hold it). */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.free.splice(0), ...this.inUse];
    this.inUse.clear();
    await Promise.all(all.map((h) => this.remove(h)));
  }

  /** The image, made once; after a failure (reported to that caller) none until IMAGE_RETRY_MS have passed. */
  private holderImage(): Promise<string | null> {
    if (Date.now() < this.imageRetryAt) return Promise.resolve(null);
    this.image ??= ensureHolderImage(this.docker, this.lifetimeSeconds).catch((error: unknown) => {
      this.image = undefined;
      this.imageRetryAt = Date.now() + IMAGE_RETRY_MS;
      throw error;
    });
    return this.image;
  }

  private async make(image: string, log: Logger): Promise<NetnsHolder> {
    const container = await this.docker.createContainer({
      Image: image,
      Entrypoint: [HOLDER_ENTRYPOINT],
      Labels: { [HOLDER_LABEL]: 'true', ...this.options.labels },
      // Its process ignores SIGTERM (the init of a PID namespace without a handler): without
      // this, `docker stop` and a daemon shutting down would wait 10 s for it.
      StopSignal: 'SIGKILL',
      HostConfig: {
        NetworkMode: 'none',
        AutoRemove: true,
        LogConfig: { Type: 'none', Config: {} },
        ReadonlyRootfs: true,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        PidsLimit: 1,
      },
    });
    try {
      // Counted from before start, so the holder ends no earlier than this says.
      const expiresAt = Date.now() + this.lifetimeSeconds * 1000;
      await container.start();
      const info = await container.inspect();
      return {
        id: container.id,
        files: { hosts: info.HostsPath, hostname: info.HostnamePath, resolvConf: info.ResolvConfPath },
        expiresAt,
      };
    } catch (error) {
      await container
        .remove({ force: true })
        .catch((removeError: unknown) =>
          log.warn(
            { holderId: container.id, err: removeError },
            'removing a namespace holder that failed to start failed; it stays until removed (docker rm -f)',
          ),
        );
      throw error;
    }
  }

  private async remove(holder: NetnsHolder): Promise<void> {
    await this.docker
      .getContainer(holder.id)
      .remove({ force: true })
      .catch(() => undefined); // gone already: its lifetime ended and the engine removed it
  }
}
