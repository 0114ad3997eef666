import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DOCKER_ENGINE } from '../../src/executors/docker/engine.js';
import { isAlreadyInState, isCommandNotFound } from '../../src/executors/docker/errors.js';
import { PODMAN_ENGINE } from '../../src/executors/podman/engine.js';
import { findStaticInit } from '../../src/executors/podman/init.js';
import { PodmanRuntime } from '../../src/executors/podman/runtime.js';
import { findPodman } from '../../src/executors/podman/service.js';
import {
  podmanSocketPath,
  podmanUnreachableMessage,
  rootlessRefusal,
} from '../../src/executors/podman/socket.js';
import { expectationsOf, RUNTIME_EXPECTATIONS } from '../helpers/runtime-expectations.js';

const failure = (code: string, message: string): NodeJS.ErrnoException =>
  Object.assign(new Error(message), { code });

describe('the podman socket', () => {
  it('is the one named (unix:// or a path), else the user runtime dir one, else root one', () => {
    expect(podmanSocketPath('/srv/p.sock', '/run/user/1000')).toBe('/srv/p.sock');
    expect(podmanSocketPath('unix:///srv/p.sock', undefined)).toBe('/srv/p.sock');
    expect(podmanSocketPath(undefined, '/run/user/1000/')).toBe('/run/user/1000/podman/podman.sock');
    expect(podmanSocketPath(undefined, undefined)).toBe('/run/podman/podman.sock');
  });

  it('says in one line what is missing and what to do', () => {
    const none = podmanUnreachableMessage('/s.sock', failure('ENOENT', 'connect ENOENT /s.sock'), null);
    expect(none).toMatch(/^no Podman service at unix:\/\/\/s\.sock \(connect ENOENT \/s\.sock\)/);
    expect(none).toContain('sudo apt-get install podman');
    expect(none).toContain('STEVEDORE_PODMAN_SOCKET');
    const refused = podmanUnreachableMessage('/s.sock', failure('EPIPE', 'boom'), '/usr/bin/podman');
    expect(refused).toContain('`podman system service --time=0 unix:///s.sock &`');
    const denied = podmanUnreachableMessage('/s.sock', failure('EACCES', 'denied'), '/usr/bin/podman');
    expect(denied).toMatch(/does not let this user in/);
    for (const line of [none, refused, denied]) expect(line).not.toContain('\n');
  });
});

describe('rootless podman', () => {
  it('is refused on cgroup v1, where it ignores every limit; allowed on v2, and root always', () => {
    const refused = rootlessRefusal(
      { rootless: true, cgroups: { version: 1 } },
      '/run/user/1000/podman/podman.sock',
    );
    expect(refused).toMatch(
      /rootless on a cgroup v1 host, where Podman ignores memory, CPU and process limits/,
    );
    expect(refused).toContain('STEVEDORE_PODMAN_SOCKET=/run/podman/podman.sock');
    expect(rootlessRefusal({ rootless: true, cgroups: { version: 2 } }, '/s')).toBeNull();
    expect(rootlessRefusal({ rootless: false, cgroups: { version: 1 } }, '/s')).toBeNull();
  });
});

describe('finding the podman program', () => {
  it('looks it up on the search path, or takes a path, and says null when it is not there', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stevedore-podman-bin-'));
    try {
      const bin = join(dir, 'podman');
      await writeFile(bin, '#!/bin/sh\n');
      await chmod(bin, 0o755);
      expect(findPodman('podman', `/nonexistent:${dir}`)).toBe(bin);
      expect(findPodman(bin, '')).toBe(bin);
      expect(findPodman('podman', '/nonexistent')).toBeNull();
      await chmod(bin, 0o644);
      expect(findPodman('podman', dir)).toBeNull();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('engine traits', () => {
  it('say how Podman differs from Docker, in capabilities the worker can read', () => {
    expect(DOCKER_ENGINE).toMatchObject({
      kind: 'docker',
      defaultLogDriver: 'local',
      filtersEventActions: true,
    });
    expect(DOCKER_ENGINE.capabilities).toEqual({ adopt: true, exec: true });
    expect(PODMAN_ENGINE).toMatchObject({
      kind: 'podman',
      versionName: 'podman',
      defaultLogDriver: 'k8s-file',
    });
    expect(PODMAN_ENGINE).toMatchObject({
      filtersEventActions: false,
      exitFromDieEvent: true,
      keepsContainers: 'always',
    });
    expect(PODMAN_ENGINE.capabilities).toEqual({ adopt: true, exec: true });
    // Made through libpod's create (unsetenvall, a static tini as init): the env and the missing
    // command's 127 are Docker's; an OOM kill still reads as a plain SIGKILL (the suites' table).
    expect(RUNTIME_EXPECTATIONS.podman).toEqual({
      addedEnv: [],
      reportsOom: false,
      missingCommandExitCode: 127,
    });
  });

  it("take Podman's 500 state error as Docker's 409, and its attach-time command error as not found", () => {
    const podman = Object.assign(
      new Error('(HTTP code 500) server error - can only kill running containers'),
      {
        statusCode: 500,
        json: {
          cause: 'container state improper',
          message: 'can only kill running containers',
          response: 500,
        },
      },
    );
    expect(isAlreadyInState(podman)).toBe(true);
    expect(isAlreadyInState(Object.assign(new Error('x'), { statusCode: 409 }))).toBe(true);
    expect(isAlreadyInState(Object.assign(new Error('x'), { statusCode: 500, json: { cause: 'io' } }))).toBe(
      false,
    );
    expect(
      isCommandNotFound(
        new Error(
          'preparing container 24f8 for attach: runc create failed: exec: "x": executable file not found in $PATH',
        ),
      ),
    ).toBe(true);
    expect(isCommandNotFound(new Error('no space left on device'))).toBe(false);
  });
});

describe('the init of Podman jobs', () => {
  it('is the first executable static tini found, else none', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stevedore-init-'));
    try {
      const tini = join(dir, 'tini-static');
      await writeFile(tini, '');
      expect(findStaticInit([join(dir, 'absent'), tini])).toBeNull();
      await chmod(tini, 0o755);
      expect(findStaticInit([join(dir, 'absent'), tini])).toBe(tini);
      expect(findStaticInit([])).toBeNull();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("says a missing command exits 127 under tini and 1 under Podman's catatonit; and no holders", async () => {
    const tini = new PodmanRuntime('/nonexistent.sock', { binary: null, initPath: '/usr/bin/tini-static' });
    const catatonit = new PodmanRuntime('/nonexistent.sock', { binary: null, initPath: null });
    try {
      expect(tini.init).toBe('/usr/bin/tini-static');
      expect(catatonit.init).toBeNull();
      expect(expectationsOf(tini).missingCommandExitCode).toBe(127);
      expect(expectationsOf(catatonit).missingCommandExitCode).toBe(1);
      expect(expectationsOf(catatonit).addedEnv).toEqual([]);
      expect(catatonit.capabilities).toEqual({ adopt: true, exec: true });
      expect(tini.holders).toBeNull();
    } finally {
      await tini.close();
      await catatonit.close();
    }
  });
});
