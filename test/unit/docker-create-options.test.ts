import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { DROPPED_CAPABILITIES, toDockerCreateOptions } from '../../src/executors/docker/create-options.js';
import { DEFAULT_PIDS_LIMIT, MIN_MEMORY_BYTES } from '../../src/executors/limits.js';
import { mappingSpec } from '../helpers/mapping-spec.js';

const spec = mappingSpec;

describe('toDockerCreateOptions', () => {
  it('maps image, command and exactly the spec env, with no TTY', () => {
    const o = toDockerCreateOptions(spec({ env: { A: '1', B: 'x=y' } }));
    expect(o.Image).toBe('img:1');
    expect(o.Cmd).toEqual(['echo', 'hi']);
    expect(o.Env).toEqual(['A=1', 'B=x=y']);
    expect(o.Tty).toBe(false);
  });

  it.each([
    [undefined, ''],
    ['', ''],
    ['.', ''],
    ['/work', '/work'],
  ])('maps working dir %j to %j', (dir, expected) => {
    expect(toDockerCreateOptions(spec({ workingDir: dir })).WorkingDir).toBe(expected);
  });

  it('maps vcpus to a CPU quota over a 100 ms period', () => {
    expect(toDockerCreateOptions(spec({ vcpus: 2 })).HostConfig).toMatchObject({
      CpuPeriod: 100_000,
      CpuQuota: 200_000,
    });
    expect(toDockerCreateOptions(spec({ vcpus: 0.001 })).HostConfig?.CpuQuota).toBe(1_000);
    expect(toDockerCreateOptions(spec({ vcpus: 0 })).HostConfig?.CpuQuota).toBeUndefined();
  });

  it('maps ramBytes to memory = memory+swap, raising tiny values to the engine minimum', () => {
    expect(toDockerCreateOptions(spec({ ramBytes: 512 * 1024 * 1024 })).HostConfig).toMatchObject({
      Memory: 512 * 1024 * 1024,
      MemorySwap: 512 * 1024 * 1024,
    });
    expect(toDockerCreateOptions(spec({ ramBytes: 10 })).HostConfig).toMatchObject({
      Memory: MIN_MEMORY_BYTES,
      MemorySwap: MIN_MEMORY_BYTES,
    });
    expect(toDockerCreateOptions(spec()).HostConfig?.Memory).toBeUndefined();
  });

  it('maps bind mounts to structured bind Mounts, never a Binds string', () => {
    const o = toDockerCreateOptions(
      spec({
        bindMounts: {
          '/out': { hostPath: '/srv/out', readOnly: false },
          '/in': { hostPath: '/srv/in', readOnly: true },
        },
      }),
    );
    expect(o.HostConfig?.Mounts).toEqual([
      { Type: 'bind', Source: '/srv/in', Target: '/in', ReadOnly: true },
      { Type: 'bind', Source: '/srv/out', Target: '/out', ReadOnly: false },
    ]);
    expect(o.HostConfig?.Binds).toEqual([]);
  });

  it('keeps ":" and "," in mount paths as path characters: no propagation or mode from user input', () => {
    const o = toDockerCreateOptions(
      spec({
        bindMounts: {
          '/x:rshared': { hostPath: '/srv/a:b,c', readOnly: false },
          '/y,ro': { hostPath: '/srv/y:z', readOnly: true },
        },
      }),
    );
    expect(o.HostConfig?.Mounts).toEqual([
      { Type: 'bind', Source: '/srv/a:b,c', Target: '/x:rshared', ReadOnly: false },
      { Type: 'bind', Source: '/srv/y:z', Target: '/y,ro', ReadOnly: true },
    ]);
    for (const m of o.HostConfig?.Mounts ?? []) expect(m.BindOptions).toBeUndefined();
  });

  it('runs the command under the engine init by default, and as PID 1 when init is false', () => {
    expect(toDockerCreateOptions(spec()).HostConfig?.Init).toBe(true);
    expect(toDockerCreateOptions(spec({ init: true })).HostConfig?.Init).toBe(true);
    expect(toDockerCreateOptions(spec({ init: false })).HostConfig?.Init).toBe(false);
  });

  it('disables the network unless enabled, then uses the mode or "default"', () => {
    expect(toDockerCreateOptions(spec()).HostConfig?.NetworkMode).toBe('none');
    expect(toDockerCreateOptions(spec({ networkMode: 'host' })).HostConfig?.NetworkMode).toBe('none');
    expect(toDockerCreateOptions(spec({ enableNetwork: true })).HostConfig?.NetworkMode).toBe('default');
    expect(
      toDockerCreateOptions(spec({ enableNetwork: true, networkMode: 'bridge' })).HostConfig?.NetworkMode,
    ).toBe('bridge');
  });

  it('sets the cgroup parent', () => {
    expect(toDockerCreateOptions(spec({ cgroupParent: '/jobs' })).HostConfig?.CgroupParent).toBe('/jobs');
  });

  it('requests the count of nvidia GPUs: by Count, or the first ids of CUDA_VISIBLE_DEVICES, never all', () => {
    const caps = [['gpu', 'nvidia', 'compute', 'utility']];
    expect(
      toDockerCreateOptions(spec({ gpu: { stack: 'cuda', deviceCount: 2 } })).HostConfig?.DeviceRequests,
    ).toEqual([{ Driver: 'nvidia', Count: 2, Capabilities: caps }]);
    const listed = (deviceCount: number) =>
      toDockerCreateOptions(
        spec({ gpu: { stack: 'cuda', deviceCount } }),
        {},
        { cudaVisibleDevices: '0, 2, 3' },
      ).HostConfig?.DeviceRequests;
    expect(listed(1)).toEqual([{ Driver: 'nvidia', DeviceIDs: ['0'], Capabilities: caps }]);
    expect(listed(2)).toEqual([{ Driver: 'nvidia', DeviceIDs: ['0', '2'], Capabilities: caps }]);
  });

  it('passes /dev/kfd and the count of render devices with their groups for rocm, honouring AMD_VISIBLE_DEVICES', () => {
    const facts = {
      renderDevices: [
        { path: '/dev/dri/renderD128', gid: 44 },
        { path: '/dev/dri/renderD129', gid: 109 },
      ],
      kfdGid: 109,
    };
    const all = toDockerCreateOptions(spec({ gpu: { stack: 'rocm', deviceCount: 2 } }), {}, facts).HostConfig;
    expect(all?.Devices?.map((d: { PathOnHost: string }) => d.PathOnHost)).toEqual([
      '/dev/kfd',
      '/dev/dri/renderD128',
      '/dev/dri/renderD129',
    ]);
    expect(all?.GroupAdd).toEqual(['44', '109']);
    // The count, not every device the worker may hand out.
    const first = toDockerCreateOptions(
      spec({ gpu: { stack: 'rocm', deviceCount: 1 } }),
      {},
      facts,
    ).HostConfig;
    expect(first?.Devices?.map((d: { PathOnHost: string }) => d.PathOnHost)).toEqual([
      '/dev/kfd',
      '/dev/dri/renderD128',
    ]);
    expect(first?.GroupAdd).toEqual(['44', '109']);
    const one = toDockerCreateOptions(
      spec({ gpu: { stack: 'rocm', deviceCount: 1 } }),
      {},
      {
        ...facts,
        amdVisibleDevices: '1',
      },
    ).HostConfig;
    expect(one?.Devices?.map((d: { PathOnHost: string }) => d.PathOnHost)).toEqual([
      '/dev/kfd',
      '/dev/dri/renderD129',
    ]);
    expect(one?.GroupAdd).toEqual(['109']);
  });

  it('attaches stdin only when given', () => {
    expect(toDockerCreateOptions(spec())).toMatchObject({
      AttachStdin: false,
      OpenStdin: false,
      StdinOnce: false,
    });
    expect(toDockerCreateOptions(spec({ stdin: Readable.from([]) }))).toMatchObject({
      AttachStdin: true,
      OpenStdin: true,
      StdinOnce: true,
    });
  });

  it('names and labels the container, never auto-removes, and uses the chosen log driver', () => {
    const o = toDockerCreateOptions(spec(), {
      name: 'job-1',
      labels: { 'stevedore.job-id': '1' },
      logDriver: 'local',
    });
    expect(o.name).toBe('job-1');
    expect(o.Labels).toEqual({ 'stevedore.job-id': '1', 'stevedore.image': 'img:1' });
    expect(o.HostConfig?.AutoRemove).toBe(false);
    expect(o.HostConfig?.LogConfig?.Type).toBe('local');
    expect(toDockerCreateOptions(spec(), { logDriver: 'none' }).HostConfig?.LogConfig?.Type).toBe('none');
    // The default keeps every byte in the engine, so an adopting worker can replay it.
    expect(toDockerCreateOptions(spec()).HostConfig?.LogConfig?.Type).toBe('local');
  });

  it.each([
    ['a minimal spec', spec()],
    [
      'a spec with network, mounts, a GPU and a cgroup parent',
      spec({
        enableNetwork: true,
        networkMode: 'bridge',
        bindMounts: { '/out': { hostPath: '/srv/out', readOnly: false } },
        gpu: { stack: 'cuda', deviceCount: 1 },
        cgroupParent: '/jobs',
        init: false,
      }),
    ],
  ])('hardens %s: no new privileges, no added caps, the dropped ones dropped, never privileged', (_, s) => {
    const host = toDockerCreateOptions(s).HostConfig;
    expect(host?.SecurityOpt).toEqual(['no-new-privileges']);
    expect(host?.Privileged).toBe(false);
    expect(host?.CapAdd).toEqual([]);
    expect(host?.CapDrop).toEqual(['NET_RAW', 'MKNOD', 'AUDIT_WRITE', 'SETFCAP', 'SETPCAP', 'SYS_CHROOT']);
    expect(host?.PidsLimit).toBe(DEFAULT_PIDS_LIMIT);
  });

  it('keeps what `chown`, `su` and package managers need in a container', () => {
    for (const kept of ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'SETUID', 'SETGID', 'KILL']) {
      expect(DROPPED_CAPABILITIES).not.toContain(kept);
    }
  });

  it('passes no host device without a GPU, and only the GPU mapping with one', () => {
    expect(toDockerCreateOptions(spec()).HostConfig?.Devices).toBeUndefined();
    expect(toDockerCreateOptions(spec()).HostConfig?.DeviceRequests).toBeUndefined();
    const cuda = toDockerCreateOptions(spec({ gpu: { stack: 'cuda', deviceCount: 1 } })).HostConfig;
    expect(cuda?.Devices).toBeUndefined();
    expect(cuda?.DeviceRequests).toHaveLength(1);
  });

  it('maps pidsLimit, and never to "unlimited": absent, zero, negative or fractional give the default', () => {
    expect(toDockerCreateOptions(spec({ pidsLimit: 64 })).HostConfig?.PidsLimit).toBe(64);
    for (const bad of [undefined, 0, -1, 1.5, Number.NaN]) {
      expect(toDockerCreateOptions(spec({ pidsLimit: bad })).HostConfig?.PidsLimit).toBe(DEFAULT_PIDS_LIMIT);
    }
    expect(DEFAULT_PIDS_LIMIT).toBe(4096);
  });

  it('runs the image id loadImage() found, so a tag moved since cannot change what runs', () => {
    const id = `sha256:${'a'.repeat(64)}`;
    const o = toDockerCreateOptions(spec(), { imageId: id });
    expect(o.Image).toBe(id);
    expect(o.Labels?.['stevedore.image']).toBe('img:1');
    expect(toDockerCreateOptions(spec()).Image).toBe('img:1');
  });
});

describe('toDockerCreateOptions with a namespace holder', () => {
  const holder = {
    id: 'h0lder',
    files: { hosts: '/d/h0lder/hosts', hostname: '/d/h0lder/hostname', resolvConf: '/d/h0lder/resolv.conf' },
  };

  it("joins a job without network to the holder's namespace and binds its network files read-only", () => {
    const o = toDockerCreateOptions(spec(), { netnsHolder: holder });
    expect(o.HostConfig?.NetworkMode).toBe('container:h0lder');
    expect(o.HostConfig?.Binds).toEqual([
      '/d/h0lder/hosts:/etc/hosts:ro',
      '/d/h0lder/hostname:/etc/hostname:ro',
      '/d/h0lder/resolv.conf:/etc/resolv.conf:ro',
    ]);
    expect(o.HostConfig?.Mounts).toEqual([]);
  });

  it('leaves a job with network alone', () => {
    const o = toDockerCreateOptions(spec({ enableNetwork: true }), { netnsHolder: holder });
    expect(o.HostConfig?.NetworkMode).toBe('default');
    expect(o.HostConfig?.Binds).toEqual([]);
  });

  it("lets the spec's own bind mount at one of those paths win", () => {
    const o = toDockerCreateOptions(
      spec({ bindMounts: { '/etc/hosts': { hostPath: '/srv/hosts', readOnly: true } } }),
      { netnsHolder: holder },
    );
    expect(o.HostConfig?.Mounts).toEqual([
      { Type: 'bind', Source: '/srv/hosts', Target: '/etc/hosts', ReadOnly: true },
    ]);
    expect(o.HostConfig?.Binds).toEqual([
      '/d/h0lder/hostname:/etc/hostname:ro',
      '/d/h0lder/resolv.conf:/etc/resolv.conf:ro',
    ]);
  });
});
