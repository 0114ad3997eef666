import { access, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import type { RegistryCredentials } from '../registry-auth.js';
import type { ContainerRuntime, RuntimeCapabilities, RuntimeContainer } from '../runtime.js';
import { findSingularity, type SingularityBinary } from './binary.js';
import { JobCgroup } from './cgroup.js';
import { type ExecTools, findExecTools } from './exec-tools.js';
import {
  type HardeningFacts,
  HOSTS_FILE,
  MASKED_PROC_DIRS,
  READ_ONLY_PROC_PATHS,
  seccompProfile,
} from './hardening.js';
import { SingularityImages } from './images.js';
import { mountPathProblem } from './mounts.js';
import { ContainerRecords } from './records.js';
import { SifCache } from './sif-cache.js';

export interface SingularityRuntimeOptions {
  /** STEVEDORE_SINGULARITY_BIN; absent: apptainer, else singularity, on `searchPath`. */
  bin?: string;
  /** Where programs are looked for (the worker's PATH). */
  searchPath?: string;
  /** STEVEDORE_SIF_CACHE: converted images; default ~/.cache/stevedore/sif. */
  sifCache?: string;
  /** Cap of the SIF cache in bytes; least recently used images go past it. */
  sifCacheBytes?: number;
  /** STEVEDORE_SIF_CONVERT_TIMEOUT_MS: how long converting one image to SIF may take. */
  convertTimeoutMs?: number;
  /** Records of the containers this host's workers run (for removing a crashed worker's). */
  stateDir?: string;
  credentials?: RegistryCredentials;
  /** Local Docker engine socket for `docker-daemon:` images. */
  dockerSocket?: string;
  visibleDevices?: { cuda?: string; amd?: string };
  /** Where the host's cgroup filesystem is (tests). */
  cgroupRoot?: string;
  /** How long start() and exec() wait to see the command run (default START_TIMEOUT_MS). */
  startTimeoutMs?: number;
}

/** How long a container's command may take to show as running: Apptainer mounts a SIF in well under a second here. */
export const START_TIMEOUT_MS = 60_000;

/** Where the SIF cache is when STEVEDORE_SIF_CACHE is not set. */
export function defaultSifCache(home = homedir()): string {
  return join(home, '.cache', 'stevedore', 'sif');
}

/**
 * Apptainer (or SingularityCE) on this host, opened once per worker: the program, the SIF cache
 * and the records of running containers. A container is a process of the worker's: it cannot
 * outlive its worker to be adopted (capabilities.adopt is false); a crashed worker's container is
 * found by its record and removed, and its job runs again.
 */
export class SingularityRuntime implements ContainerRuntime {
  readonly kind = 'singularity' as const;
  readonly capabilities: RuntimeCapabilities = { adopt: false, exec: true };
  readonly records: ContainerRecords;
  readonly startTimeoutMs: number;
  /** Where each job's env script (env-script.ts) is written, as `<container id>.sh`. */
  readonly envScriptDir: string;

  private constructor(
    readonly bin: SingularityBinary,
    readonly images: SingularityImages,
    readonly options: SingularityRuntimeOptions,
    stateDir: string,
    readonly hardening: HardeningFacts,
  ) {
    this.startTimeoutMs = options.startTimeoutMs ?? START_TIMEOUT_MS;
    this.records = new ContainerRecords(stateDir);
    this.envScriptDir = join(stateDir, 'env');
  }

  /** Finds the program and checks that it runs; rejects with a RuntimeUnavailableError saying what to do. */
  static async open(options: SingularityRuntimeOptions = {}): Promise<SingularityRuntime> {
    const bin = await findSingularity({ explicit: options.bin, searchPath: options.searchPath });
    const cache = new SifCache(
      options.sifCache ?? defaultSifCache(),
      options.sifCacheBytes, // undefined: the cache's own default cap
    );
    const images = new SingularityImages(bin, cache, {
      credentials: options.credentials,
      dockerSocket: options.dockerSocket,
      convertTimeoutMs: options.convertTimeoutMs,
    });
    const stateDir = options.stateDir ?? join(homedir(), '.local', 'state', 'stevedore', 'singularity');
    const hardening = await prepareHardening(join(stateDir, 'hardening'));
    await mkdir(join(stateDir, 'env'), { recursive: true, mode: 0o700 });
    return new SingularityRuntime(bin, images, options, stateDir, hardening);
  }

  private tools: Promise<ExecTools | { unavailable: string }> | undefined;

  /** The host programs an exec runs (exec-tools.ts), looked for on first use. */
  execTools(): Promise<ExecTools | { unavailable: string }> {
    this.tools ??= findExecTools();
    return this.tools;
  }

  /** `--mount` takes every path literally but one with `\r\n` (mounts.ts). */
  mountPathProblem(path: string): string | null {
    return mountPathProblem(path);
  }

  async version(): Promise<string> {
    return this.bin.version;
  }

  async checkAvailable(): Promise<void> {
    await findSingularity({ explicit: this.bin.path });
  }

  async listContainers(labels: Record<string, string>): Promise<RuntimeContainer[]> {
    const matching = (await this.records.all()).filter((r) =>
      Object.entries(labels).every(([k, v]) => r.labels[k] === v),
    );
    return Promise.all(
      matching.map(async (r) => ({
        id: r.id,
        labels: r.labels,
        state: await ContainerRecords.stateOf(r),
        createdAt: r.createdAt,
      })),
    );
  }

  async containerState(id: string): Promise<string | null> {
    const record = await this.records.read(id);
    return record ? ContainerRecords.stateOf(record) : null;
  }

  /** Kills whatever still runs in the container's cgroup, then removes the cgroup, its env script and the record. */
  async removeContainer(id: string): Promise<void> {
    const record = await this.records.read(id);
    if (!record) return;
    if (record.cgroup !== '') {
      const cgroup = await JobCgroup.existing(record.cgroup, this.options.cgroupRoot);
      for (let i = 0; i < 50 && (await cgroup.pids()).length > 0; i++) {
        await cgroup.signalAll('SIGKILL');
        await new Promise((r) => setTimeout(r, 20));
      }
      await cgroup.remove();
    } else if ((await ContainerRecords.stateOf(record)) === 'running') {
      process.kill(-record.pid, 'SIGKILL');
    }
    await rm(join(this.envScriptDir, `${id}.sh`), { force: true });
    await this.records.remove(id);
  }

  /** This host and its records: a container here ends with its worker, so no other host ever waits for it. */
  async engineId(): Promise<string> {
    return `${hostname()}:${this.records.dir}`;
  }

  /** The SIF cache (every converted image) and the records of running containers. */
  async dataPaths(): Promise<string[]> {
    return [this.images.cache.dir, this.records.dir];
  }

  async close(): Promise<void> {
    // Nothing held open: the program runs per container.
  }
}

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );

/** Writes what confining a job needs (hardening.ts) into `dir`, and notes which /proc paths this host has. */
async function prepareHardening(dir: string): Promise<HardeningFacts> {
  const root = process.getuid?.() === 0;
  const emptyDir = join(dir, 'empty');
  await mkdir(emptyDir, { recursive: true, mode: 0o755 });
  // Workers on one host share the state dir: a job starting now must never read a half-written file.
  const put = async (name: string, text: string): Promise<string> => {
    const path = join(dir, name);
    const partial = `${path}.${process.pid}.${Date.now()}`;
    await writeFile(partial, text, { mode: 0o644 });
    await rename(partial, path);
    return path;
  };
  const profile = await put('seccomp.json', seccompProfile(process.arch));
  const hostsFile = await put('hosts', HOSTS_FILE);
  const present = async (paths: readonly string[]) =>
    (await Promise.all(paths.map(async (p) => ((await exists(p)) ? p : null)))).filter(
      (p): p is string => p !== null,
    );
  return {
    root,
    seccompProfile: root ? profile : null,
    readOnlyPaths: await present(READ_ONLY_PROC_PATHS),
    maskedDirs: await present(MASKED_PROC_DIRS),
    emptyDir,
    hostsFile,
  };
}
