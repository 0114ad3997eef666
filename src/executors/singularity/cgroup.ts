import { access, mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { coerceError } from '../../jobs/errors.js';
import type { FinalUsage, UsageSample } from '../executor.js';
import type { CgroupLimits } from './args.js';

/** Where the kernel's cgroup filesystem is mounted (the host's, seen by a worker on the host). */
export const DEFAULT_CGROUP_ROOT = '/sys/fs/cgroup';
/** v1 controllers a job's cgroup is made in: limits (cpu, memory, pids) and counters (cpuacct, blkio). */
const V1_CONTROLLERS = ['cpu', 'cpuacct', 'memory', 'pids', 'blkio'] as const;

const readText = (path: string): Promise<string | null> => readFile(path, 'utf8').catch(() => null);
const readNumber = async (path: string): Promise<number | null> => {
  const value = Number((await readText(path))?.trim() ?? Number.NaN);
  return Number.isFinite(value) ? value : null;
};

/** Sums the Read and Write lines of a v1 blkio `io_service_bytes` file, or rbytes/wbytes of a v2 io.stat. */
export function ioBytes(text: string): number {
  let total = 0;
  for (const line of text.split('\n')) {
    const [, op, value] = line.trim().split(/\s+/);
    if (op === 'Read' || op === 'Write') total += Number(value) || 0;
  }
  for (const match of text.matchAll(/\b[rw]bytes=(\d+)/g)) total += Number(match[1]);
  return total;
}

/** A `key value` line's value from a flat-keyed file such as v2 cpu.stat; null when absent. */
function flatKey(text: string | null, key: string): number | null {
  for (const line of (text ?? '').split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k === key && v !== undefined && v !== '') return Number(v);
  }
  return null;
}

/**
 * One job's own cgroup (`/stevedore/<id>` in each hierarchy): the container runs in it from its
 * first instruction, so its limits hold for everything the job starts, its counters outlive the
 * processes (read after the exit), and killing what it holds kills the whole container.
 */
export class JobCgroup {
  private constructor(
    private readonly root: string,
    private readonly version: 1 | 2,
    /** Relative path, e.g. /stevedore/<id>: the cgroupId(). */
    readonly path: string,
  ) {}

  /** Makes the cgroup, or says why it cannot be made here (then the job runs without limits or final usage). */
  static async make(path: string, root = DEFAULT_CGROUP_ROOT): Promise<JobCgroup | { unavailable: string }> {
    const version = await access(join(root, 'cgroup.controllers')).then(
      () => 2 as const,
      () => 1 as const,
    );
    const cgroup = new JobCgroup(root, version, path);
    try {
      for (const dir of cgroup.dirs()) await mkdir(dir, { recursive: true });
    } catch (error) {
      // What was made of it is empty directories, which the unavailable message below explains.
      await cgroup.remove().catch(() => undefined);
      return {
        unavailable: `cannot make cgroup ${path} under ${root} (${(error as NodeJS.ErrnoException).code ?? coerceError(error).message}; the worker must run as root on the host)`,
      };
    }
    return cgroup;
  }

  /** The same cgroup, for one a record names (another worker's leftover). */
  static async existing(path: string, root = DEFAULT_CGROUP_ROOT): Promise<JobCgroup> {
    const version = await access(join(root, 'cgroup.controllers')).then(
      () => 2 as const,
      () => 1 as const,
    );
    return new JobCgroup(root, version, path);
  }

  private dirs(): string[] {
    if (this.version === 2) return [join(this.root, this.path)];
    return V1_CONTROLLERS.map((c) => join(this.root, c, this.path));
  }

  private file(controller: string, name: string): string {
    return this.version === 2
      ? join(this.root, this.path, name)
      : join(this.root, controller, this.path, name);
  }

  /** The `cgroup.procs` files a process writes its pid into to join (one per hierarchy). */
  procsFiles(): string[] {
    return [...new Set(this.dirs())].map((d) => join(d, 'cgroup.procs'));
  }

  /** Writes the limits; memory+swap = memory where the kernel accounts swap. */
  async apply(limits: CgroupLimits): Promise<void> {
    const { cpuQuotaUs, cpuPeriodUs, memoryBytes, pidsMax } = limits;
    if (this.version === 2) {
      if (cpuQuotaUs !== undefined)
        await writeFile(this.file('cpu', 'cpu.max'), `${cpuQuotaUs} ${cpuPeriodUs}`);
      if (memoryBytes !== undefined) {
        await writeFile(this.file('memory', 'memory.max'), String(memoryBytes));
        // Absent where the kernel accounts no swap: then there is no swap to limit.
        await writeFile(this.file('memory', 'memory.swap.max'), '0').catch(() => undefined);
      }
      if (pidsMax !== undefined) await writeFile(this.file('pids', 'pids.max'), String(pidsMax));
      return;
    }
    if (cpuQuotaUs !== undefined) {
      await writeFile(this.file('cpu', 'cpu.cfs_period_us'), String(cpuPeriodUs));
      await writeFile(this.file('cpu', 'cpu.cfs_quota_us'), String(cpuQuotaUs));
    }
    if (memoryBytes !== undefined) {
      await writeFile(this.file('memory', 'memory.limit_in_bytes'), String(memoryBytes));
      // Absent without swap accounting (swapaccount=0): then there is no swap to limit.
      await writeFile(this.file('memory', 'memory.memsw.limit_in_bytes'), String(memoryBytes)).catch(
        () => undefined,
      );
    }
    if (pidsMax !== undefined) await writeFile(this.file('pids', 'pids.max'), String(pidsMax));
  }

  /** Pids of every process in the cgroup now. */
  async pids(): Promise<number[]> {
    const text = await readText(this.file('pids', 'cgroup.procs'));
    return (text ?? '')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map(Number);
  }

  /** Sends `signal` to every process in it (a process that escaped the process group included). */
  async signalAll(signal: NodeJS.Signals): Promise<void> {
    for (const pid of await this.pids()) {
      try {
        process.kill(pid, signal);
      } catch {
        // exited meanwhile
      }
    }
  }

  async sample(): Promise<UsageSample> {
    const v2 = this.version === 2;
    const [cpu, memory, peak, io, limit] = await Promise.all([
      v2
        ? readText(this.file('cpu', 'cpu.stat')).then((t) => {
            const usec = flatKey(t, 'usage_usec');
            return usec === null ? null : usec / 1e6;
          })
        : readNumber(this.file('cpuacct', 'cpuacct.usage')).then((ns) => (ns === null ? null : ns / 1e9)),
      readNumber(this.file('memory', v2 ? 'memory.current' : 'memory.usage_in_bytes')),
      readNumber(this.file('memory', v2 ? 'memory.peak' : 'memory.max_usage_in_bytes')),
      readText(this.file('blkio', v2 ? 'io.stat' : 'blkio.throttle.io_service_bytes_recursive')),
      readText(this.file('memory', v2 ? 'memory.max' : 'memory.limit_in_bytes')),
    ]);
    const limitBytes = Number(limit?.trim());
    return {
      cpuSeconds: cpu,
      memoryBytes: memory,
      peakMemoryBytes: peak,
      blockIoBytes: io === null ? null : ioBytes(io),
      // v1 says "no limit" with a huge number (LONG_MAX rounded to pages), v2 with "max".
      memoryLimitBytes: Number.isFinite(limitBytes) && limitBytes < 2 ** 60 ? limitBytes : null,
    };
  }

  /** Counters of the whole run, read after the exit (the cgroup is still there: we remove it). */
  async final(): Promise<FinalUsage> {
    const s = await this.sample();
    const missing = [
      s.cpuSeconds === null ? 'CPU time' : null,
      s.peakMemoryBytes === null
        ? `peak memory${this.version === 2 ? ' (memory.peak needs Linux 5.19 or later)' : ''}`
        : null,
    ].filter((m): m is string => m !== null);
    return {
      cpuSeconds: s.cpuSeconds,
      peakMemoryBytes: s.peakMemoryBytes,
      blockIoBytes: s.blockIoBytes,
      missing: missing.length > 0 ? `cannot read ${missing.join(', ')} of cgroup ${this.path}` : null,
    };
  }

  /** Whether the kernel's OOM killer killed a process of it (v2 memory.events, v1 memory.oom_control). */
  async oomKilled(): Promise<boolean> {
    const text = await readText(
      this.file('memory', this.version === 2 ? 'memory.events' : 'memory.oom_control'),
    );
    return (flatKey(text, 'oom_kill') ?? 0) > 0;
  }

  /** Removes it in every hierarchy; the kernel refuses while a process is in it (call after the exit). */
  async remove(): Promise<void> {
    const failures: string[] = [];
    for (const dir of this.dirs()) {
      await rmdir(dir).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') failures.push(`${dir}: ${error.code}`);
      });
    }
    if (failures.length > 0) throw new Error(`cannot remove cgroup ${this.path}: ${failures.join(', ')}`);
  }
}
