import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { flatKey, JobCgroups, parseBlkioBytes, parseIoStatBytes } from '../../src/executors/docker/cgroup.js';
import { engineInfoOf } from '../../src/executors/docker/engine-info.js';

/** The layout an engine's /info gives, as the runtime hands it to JobCgroups. */
const engine =
  (version: string, driver = 'cgroupfs') =>
  async () =>
    engineInfoOf({ CgroupVersion: version, CgroupDriver: driver }).cgroups;

describe('cgroup counter parsing', () => {
  it('sums Read and Write of a v1 blkio file, not Total', () => {
    expect(parseBlkioBytes('8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 1\n8:0 Total 12289\nTotal 12289\n')).toBe(
      12288,
    );
    expect(parseBlkioBytes('Total 0\n')).toBe(0);
  });

  it('reads a key of a flat-keyed v2 file, and sums io.stat bytes over devices', () => {
    expect(flatKey('usage_usec 1500\nuser_usec 1000\n', 'usage_usec')).toBe(1500);
    expect(flatKey('user_usec 1000\n', 'usage_usec')).toBeNull();
    expect(parseIoStatBytes('8:0 rbytes=10 wbytes=20 rios=1\n8:16 rbytes=1 wbytes=2\n')).toBe(33);
  });
});

describe('JobCgroups', () => {
  let root: string;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'stevedore-cgroup-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('gives each job its own parent under /stevedore, or under the spec’s cgroupParent', async () => {
    const cgroups = new JobCgroups(engine('1'), root);
    const a = await cgroups.prepare();
    const b = await cgroups.prepare('/batch/');
    expect('parent' in a && a.parent).toMatch(/^\/stevedore\/[0-9a-f-]{36}$/);
    expect('parent' in b && b.parent).toMatch(/^\/batch\/[0-9a-f-]{36}$/);
    expect(cgroups.owns('parent' in a ? a.parent : '')).toBe(true);
    expect(cgroups.owns('/docker')).toBe(false);
    expect(cgroups.owns(undefined)).toBe(false);
  });

  it("a deployment's parents go under its own directory, and its sweep empties only that one", async () => {
    const [ours, theirs] = ['aaaaaaaaaaaa', 'bbbbbbbbbbbb'];
    const cgroups = new JobCgroups(engine('1'), root, ours);
    const made = await cgroups.prepare();
    expect('parent' in made && made.parent).toMatch(/^\/stevedore\/aaaaaaaaaaaa\/[0-9a-f-]{36}$/);
    expect(cgroups.owns('parent' in made ? made.parent : '')).toBe(true);
    const uuid = '00000000-0000-4000-8000-000000000000';
    const dirs = [`stevedore/${ours}/${uuid}`, `stevedore/${theirs}/${uuid}`, `stevedore/${uuid}`];
    for (const d of dirs) await mkdir(join(root, 'memory', d), { recursive: true });
    expect(await cgroups.sweep(0)).toBe(1);
    const left = async (d: string) =>
      await readdir(join(root, 'memory', d)).then(
        () => true,
        () => false,
      );
    expect(await Promise.all(dirs.map(left))).toEqual([false, true, true]);
  });

  it('says why there is none with the systemd driver', async () => {
    expect(await new JobCgroups(engine('2', 'systemd'), root).prepare()).toEqual({
      unavailable: expect.stringMatching(/systemd cgroup driver/),
    });
  });

  it('reads v1 cpuacct.usage, memory.max_usage_in_bytes and blkio, then removes the parent everywhere', async () => {
    const parent = '/stevedore/job';
    for (const c of ['cpuacct', 'memory', 'blkio', 'pids'])
      await mkdir(join(root, c, parent), { recursive: true });
    await writeFile(join(root, 'cpuacct', parent, 'cpuacct.usage'), '2500000000\n');
    await writeFile(join(root, 'memory', parent, 'memory.max_usage_in_bytes'), '52428800\n');
    await writeFile(
      join(root, 'blkio', parent, 'blkio.throttle.io_service_bytes_recursive'),
      '8:0 Read 5\nTotal 5\n',
    );
    const cgroups = new JobCgroups(engine('1'), root);
    expect(await cgroups.read(parent)).toEqual({
      cpuSeconds: 2.5,
      peakMemoryBytes: 52_428_800,
      blockIoBytes: 5,
      missing: null,
    });
    // rmdir works on empty directories only, as in cgroupfs (whose files are not real).
    for (const [c, f] of [
      ['cpuacct', 'cpuacct.usage'],
      ['memory', 'memory.max_usage_in_bytes'],
      ['blkio', 'blkio.throttle.io_service_bytes_recursive'],
    ] as const)
      await rm(join(root, c, parent, f));
    await cgroups.remove(parent);
    for (const c of await readdir(root)) expect(await readdir(join(root, c, 'stevedore'))).toEqual([]);
  });

  it('reads v2 cpu.stat usage_usec and memory.peak, and names what is missing', async () => {
    const parent = '/stevedore/job';
    await mkdir(join(root, parent), { recursive: true });
    await writeFile(join(root, parent, 'cpu.stat'), 'usage_usec 1250000\nuser_usec 1000000\n');
    const cgroups = new JobCgroups(engine('2'), root);
    const usage = await cgroups.read(parent);
    expect(usage).toMatchObject({ cpuSeconds: 1.25, peakMemoryBytes: null, blockIoBytes: null });
    expect(usage.missing).toMatch(/memory\.peak/);
  });

  it('when nothing can be read, every counter is null with the reason', async () => {
    const usage = await new JobCgroups(engine('1'), root).read('/stevedore/gone');
    expect(usage).toMatchObject({ cpuSeconds: null, peakMemoryBytes: null, blockIoBytes: null });
    expect(usage.missing).toMatch(/cannot read .*cpuacct\.usage.*visible to the worker/);
  });
});
