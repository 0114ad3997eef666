import { describe, expect, it } from 'vitest';
import {
  capsBeyondDockerDefault,
  parseProbe,
  type ReachContext,
  reachProblems,
  suffixes,
} from '../helpers/hostile-probe.js';
import { treeChanges } from '../helpers/tree-snapshot.js';

/** A probe's output as a hardened Docker job prints it (trimmed to what the judge reads). */
const CLEAN = [
  'status.CapInh=0000000000000000',
  'status.CapPrm=00000000000004fb',
  'status.CapEff=00000000000004fb',
  'status.CapBnd=00000000000004fb',
  'status.CapAmb=0000000000000000',
  'status.NoNewPrivs=1',
  'status.Seccomp=2',
  'ns.pid=pid:[2]',
  'ns.mnt=mnt:[2]',
  'ns.net=net:[2]',
  'ns.ipc=ipc:[2]',
  'mount 157 122 0:81 / / rw,relatime master:7 - overlay overlay rw',
  'mount 177 157 254:0 /w/allowed/data /data ro,relatime - ext4 /dev/vda rw',
  'mount 178 157 254:0 /w/allowed/rw /rw rw,relatime - ext4 /dev/vda rw',
  'mount 176 157 254:0 /usr/bin/tini-static /sbin/docker-init ro,relatime - ext4 /dev/vda rw',
  'act.mount-tmpfs=denied mount: permission denied (are you root?)',
  'act.mount-devtmpfs=denied mount: permission denied (are you root?)',
  'act.mknod-disk=denied mknod: /tmp/hs/disk-node: Operation not permitted',
  'act.net-addr=denied ip: RTNETLINK answers: Operation not permitted',
  "act.module=denied insmod: can't insert '/tmp/hs/x.ko': Operation not permitted",
  'act.unshare-mount=denied unshare: unshare(0x20000): Operation not permitted',
  "act.ro-write=denied sh: can't create /data/pwned-ro: Read-only file system",
  'act.rw-write=allowed ',
  'bind-written=/rw',
  'done',
].join('\n');

const ctx: ReachContext = {
  secret: 'stevedore-secret-0123',
  hostNs: { pid: 'pid:[1]', mnt: 'mnt:[1]', net: 'net:[1]', ipc: 'ipc:[1]' },
  worldDev: '254:0',
  allowedBinds: ['/w/allowed/data', '/w/allowed/rw'],
  readOnlyBinds: ['/w/allowed/data'],
  expect: { seccomp: { filtered: true }, ownBinds: { pattern: /^\/usr\/bin\/tini-static$/, why: 'init' } },
};

describe('the hostile probe judge', () => {
  it('finds nothing wrong with a hardened job', () => {
    expect(reachProblems(CLEAN, ctx)).toEqual([]);
  });

  it('names each promise an escaping job broke', () => {
    const escaped = CLEAN.replace(/00000000000004fb/g, '000001fffeffffff')
      .replace('status.NoNewPrivs=1', 'status.NoNewPrivs=0')
      .replace('act.net-addr=denied ip: RTNETLINK answers: Operation not permitted', 'act.net-addr=allowed ')
      .replace('ns.pid=pid:[2]', 'ns.pid=pid:[1]')
      .replace('bind-written=/rw', 'bind-written=/rw\nbind-written=/data\nwrote=mount:/x/w/outside')
      .replace('done', 'stevedore-secret-0123\ntrick=mount:/x/w/outside/secret\ndone')
      .concat('\nmount 200 157 254:0 / /x rw - ext4 /dev/vda rw');
    const problems = reachProblems(escaped, ctx);
    expect(problems).toEqual(
      expect.arrayContaining([
        'read the secret (mount:/x/w/outside/secret)',
        'wrote into the outside dir through mount:/x/w/outside',
        'wrote into the read-only host dir /w/allowed/data through /data',
        'NoNewPrivs is 0, not 1',
        "shares the host's pid namespace",
        'changing the network was not refused for lack of privilege: allowed',
      ]),
    );
    expect(problems.some((p) => p.startsWith('CapEff 000001fffeffffff holds DAC_READ_SEARCH'))).toBe(true);
    // The host's root at /x is both "the root filesystem" and a directory that is no bind of its own.
    expect(problems.filter((p) => p.includes('/x'))).toContain("sees the host's root filesystem at /x");
  });

  it('says a job that never ran its probe did not, without inventing the rest', () => {
    expect(reachProblems('FATAL: container creation failed', ctx)).toEqual([
      'the probe did not run to its end',
    ]);
  });

  it('reads capability masks against Docker’s default set', () => {
    expect(capsBeyondDockerDefault('00000000a80425fb')).toEqual([]); // Docker's default set itself
    expect(capsBeyondDockerDefault('0000000000200000')).toEqual(['SYS_ADMIN']);
  });

  it('lists a path as every ancestor bind would show it', () => {
    expect(suffixes('/tmp/w/outside/secret')).toEqual([
      '/tmp/w/outside/secret',
      '/w/outside/secret',
      '/outside/secret',
      '/secret',
    ]);
  });

  it('parses act names that hold paths', () => {
    const p = parseProbe('act.read-disk:/tmp/hs/dev/loop0=allowed \nact.mount-disk:/dev/vda=denied');
    expect(p.acts).toEqual({
      'read-disk:/tmp/hs/dev/loop0': { allowed: true, said: '' },
      'mount-disk:/dev/vda': { allowed: false, said: '' },
    });
  });

  it('tells new, changed and removed host files apart', () => {
    const before = new Map([
      ['/w/a', 'file 1'],
      ['/w/b', 'file 2'],
    ]);
    const after = new Map([
      ['/w/a', 'file 9'],
      ['/w/c', 'file 3'],
    ]);
    expect(treeChanges(before, after)).toEqual([
      'changed: /w/a (file 1 → file 9)',
      'new: /w/c (file 3)',
      'gone: /w/b',
    ]);
  });
});
