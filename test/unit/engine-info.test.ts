import { describe, expect, it } from 'vitest';
import { engineInfoOf } from '../../src/executors/docker/engine-info.js';
import { engineInfoOfLibpod } from '../../src/executors/podman/service.js';

// Both answers as Podman 4.3.1 gave them on one host (GET /info and GET /v4.0.0/libpod/info).
const COMPAT_INFO = {
  Name: 'vm',
  DockerRootDir: '/var/lib/containers/storage',
  CgroupVersion: '1',
  CgroupDriver: 'cgroupfs',
};
const LIBPOD_INFO = {
  host: {
    hostname: 'vm',
    cgroupVersion: 'v1',
    cgroupManager: 'cgroupfs',
    security: { rootless: false },
  },
  store: { graphRoot: '/var/lib/containers/storage' },
};

describe("what a runtime keeps of its engine's /info", () => {
  it("Docker's /info: host name, data root and cgroup layout", () => {
    expect(
      engineInfoOf({
        Name: 'build-7',
        DockerRootDir: '/var/lib/docker',
        CgroupVersion: '2',
        CgroupDriver: 'systemd',
      }),
    ).toEqual({
      hostName: 'build-7',
      dataRoot: '/var/lib/docker',
      cgroups: { version: 2, driver: 'systemd' },
    });
  });

  it('an answer without the fields keeps empty names and cgroup v1 with cgroupfs', () => {
    expect(engineInfoOf({})).toEqual({
      hostName: '',
      dataRoot: '',
      cgroups: { version: 1, driver: 'cgroupfs' },
    });
  });

  it("Podman's libpod/info gives what its Docker-compatible /info gives, and whether it is rootless", () => {
    const { rootless, ...libpod } = engineInfoOfLibpod(LIBPOD_INFO);
    expect(libpod).toEqual(engineInfoOf(COMPAT_INFO));
    expect(rootless).toBe(false);
    expect(engineInfoOfLibpod({ host: { cgroupVersion: 'v2', security: { rootless: true } } })).toMatchObject(
      {
        cgroups: { version: 2 },
        rootless: true,
      },
    );
  });
});
