import { randomUUID } from 'node:crypto';
import { readdir, readFile, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { FinalUsage } from '../executor.js';
import type { CgroupLayout } from './engine-info.js';

/** Where the kernel's cgroup filesystem is mounted (the host's, seen by a worker on the host). */
const DEFAULT_CGROUP_ROOT = '/sys/fs/cgroup';
/** Parent of every job's own cgroup; the engine creates both levels when the container starts. */
const PARENT_PREFIX = '/stevedore';
/** A parent younger than this may belong to a container the engine is starting right now. */
const SWEEP_MIN_AGE_MS = 60_000;

/** A per-job parent cgroup, or why the job has none. */
export type JobCgroup = { parent: string } | { unavailable: string };

/** Sums the Read and Write lines of a v1 blkio `io_service_bytes` file ("8:0 Read 4096"). */
export function parseBlkioBytes(text: string): number {
  let total = 0;
  for (const line of text.split('\n')) {
    const [, op, value] = line.trim().split(/\s+/);
    if (op === 'Read' || op === 'Write') total += Number(value) || 0;
  }
  return total;
}

/** A `key value` line's value from a v2 flat-keyed file such as cpu.stat; null when absent. */
export function flatKey(text: string, key: string): number | null {
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k === key && v !== undefined && v !== '') return Number(v);
  }
  return null;
}

/** Sums rbytes and wbytes over the devices of a v2 io.stat ("8:0 rbytes=1 wbytes=2 ..."). */
export function parseIoStatBytes(text: string): number {
  let total = 0;
  for (const match of text.matchAll(/\b[rw]bytes=(\d+)/g)) total += Number(match[1]);
  return total;
}

const readText = (path: string): Promise<string | null> => readFile(path, 'utf8').catch(() => null);
const readNumber = async (path: string): Promise<number | null> => {
  const text = await readText(path);
  const value = text === null ? Number.NaN : Number(text.trim());
  return Number.isFinite(value) ? value : null;
};

/**
 * Per-job parent cgroups (HostConfig.CgroupParent) whose counters include the container's after
 * it exited: the engine removes the container's own cgroup at exit, the parent keeps what its
 * dead child used. Made once per worker and shared by its executors; the engine's cgroup layout
 * comes from the runtime's one /info (DockerRuntime.engineInfo).
 */
export class JobCgroups {
  /** Where this runtime's parents go: `/stevedore/<deployment>`, or `/stevedore` when it has none. */
  private readonly base: string;

  constructor(
    /** The engine's cgroup layout; rejects when the engine does not say (asked again next time). */
    private readonly layoutOf: () => Promise<CgroupLayout>,
    private readonly root = DEFAULT_CGROUP_ROOT,
    /**
     * The deployment (jobs/deployment.ts) whose parents these are: they go under a directory of
     * its own, and sweep() looks only there, so two deployments on one engine never sweep each
     * other's (a parent is empty, and sweepable, between its container's exit and the read of its
     * final counters). Parents made before the deployment was in the path are never swept:
     * their own removal still takes them, and an empty directory left behind is harmless.
     */
    deployment?: string,
  ) {
    this.base = deployment ? `${PARENT_PREFIX}/${deployment}` : PARENT_PREFIX;
  }

  private async engineLayout(): Promise<CgroupLayout | null> {
    return this.layoutOf().catch(() => null);
  }

  /** A fresh parent cgroup name for one container, under `under` when the spec names one. */
  async prepare(under?: string): Promise<JobCgroup> {
    const layout = await this.engineLayout();
    if (!layout) return { unavailable: 'the engine did not say its cgroup layout (docker info failed)' };
    if (layout.driver !== 'cgroupfs') {
      return {
        unavailable: `the engine uses the ${layout.driver} cgroup driver; final usage is read only with cgroupfs (samples taken while the job ran are kept)`,
      };
    }
    const base = under ? `/${under.replace(/^\/+|\/+$/g, '')}` : this.base;
    return { parent: `${base}/${randomUUID()}` };
  }

  /** Whether a container's CgroupParent is one of ours (so an adopting executor reads and removes it). */
  owns(parent: string | undefined): parent is string {
    return (
      parent !== undefined && /\/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(parent)
    );
  }

  /** The parent's final counters: CPU time and peak memory of everything that ran in it. */
  async read(parent: string): Promise<FinalUsage> {
    const layout = await this.engineLayout();
    if (!layout) return noUsage('the engine did not say its cgroup layout (docker info failed)');
    return layout.version === 1 ? this.readV1(parent) : this.readV2(parent);
  }

  private async readV1(parent: string): Promise<FinalUsage> {
    const at = (controller: string, file: string): string => join(this.root, controller, parent, file);
    const [cpuNs, peak, blkio] = await Promise.all([
      readNumber(at('cpuacct', 'cpuacct.usage')),
      readNumber(at('memory', 'memory.max_usage_in_bytes')),
      readText(at('blkio', 'blkio.throttle.io_service_bytes_recursive')),
    ]);
    const missing = [
      cpuNs === null ? `cannot read ${at('cpuacct', 'cpuacct.usage')}` : null,
      peak === null ? `cannot read ${at('memory', 'memory.max_usage_in_bytes')}` : null,
    ].filter((m): m is string => m !== null);
    return {
      cpuSeconds: cpuNs === null ? null : cpuNs / 1e9,
      peakMemoryBytes: peak,
      blockIoBytes: blkio === null ? null : parseBlkioBytes(blkio),
      missing:
        missing.length > 0
          ? `${missing.join('; ')} (is the host's ${this.root} visible to the worker?)`
          : null,
    };
  }

  private async readV2(parent: string): Promise<FinalUsage> {
    const at = (file: string): string => join(this.root, parent, file);
    const [cpuStat, peak, io] = await Promise.all([
      readText(at('cpu.stat')),
      readNumber(at('memory.peak')),
      readText(at('io.stat')),
    ]);
    const usec = cpuStat === null ? null : flatKey(cpuStat, 'usage_usec');
    const missing = [
      usec === null ? `cannot read usage_usec from ${at('cpu.stat')}` : null,
      // memory.peak exists from Linux 5.19 on; older kernels keep no peak after exit.
      peak === null ? `cannot read ${at('memory.peak')} (Linux 5.19 or later has it)` : null,
    ].filter((m): m is string => m !== null);
    return {
      cpuSeconds: usec === null ? null : usec / 1e6,
      peakMemoryBytes: peak,
      blockIoBytes: io === null ? null : parseIoStatBytes(io),
      missing: missing.length > 0 ? missing.join('; ') : null,
    };
  }

  /**
   * Removes per-job parents that their containers left behind when someone other than their
   * executor removed them (reconcile, `docker rm`, an engine restart). The kernel refuses to
   * remove a cgroup that still holds a container, so only empty ones go. Resolves with how many.
   */
  async sweep(minAgeMs = SWEEP_MIN_AGE_MS): Promise<number> {
    const layout = await this.engineLayout();
    if (layout?.driver !== 'cgroupfs') return 0;
    const bases =
      layout.version === 2
        ? [join(this.root, this.base)]
        : (await readdir(this.root).catch(() => [] as string[])).map((c) => join(this.root, c, this.base));
    let removed = 0;
    for (const base of bases) {
      for (const name of await readdir(base).catch(() => [] as string[])) {
        if (!this.owns(`${this.base}/${name}`)) continue;
        const dir = join(base, name);
        const made = await stat(dir).catch(() => null);
        if (!made || Date.now() - made.mtimeMs < minAgeMs) continue;
        if (
          await rmdir(dir).then(
            () => true,
            () => false,
          )
        )
          removed += 1;
      }
    }
    return removed;
  }

  /** Removes the parent cgroup (in every hierarchy on v1) once its container is gone. */
  async remove(parent: string): Promise<void> {
    const layout = await this.engineLayout();
    const dirs =
      layout?.version === 2
        ? [join(this.root, parent)]
        : (await readdir(this.root).catch(() => [] as string[])).map((c) => join(this.root, c, parent));
    const failures: string[] = [];
    for (const dir of dirs) {
      await rmdir(dir).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT' && error.code !== 'ENOTDIR') failures.push(`${dir}: ${error.code}`);
      });
    }
    if (failures.length > 0) throw new Error(`cannot remove cgroup ${parent}: ${failures.join(', ')}`);
  }
}

/** Usage with every counter missing, and why. */
export function noUsage(why: string): FinalUsage {
  return { cpuSeconds: null, peakMemoryBytes: null, blockIoBytes: null, missing: why };
}

/** The parent cgroup of a container another executor made: ours to read and remove, or why not. */
export function adoptedCgroup(cgroups: JobCgroups, parent: string | undefined): JobCgroup {
  return cgroups.owns(parent)
    ? { parent }
    : { unavailable: 'the adopted container has no per-job parent cgroup (made by an older worker)' };
}
