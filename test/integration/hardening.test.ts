import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HOLDER_LABEL } from '../../src/executors/docker/netns/holders.js';
import { testDocker } from '../helpers/docker.js';
import { busybox, testPolicy, useTestWorld, writePolicy } from '../helpers/stevedore.js';

/** Capability numbers (linux/capability.h) the job must lack, and some it must keep. */
const DROPPED = { MKNOD: 27, NET_RAW: 13, AUDIT_WRITE: 29, SETFCAP: 31, SETPCAP: 8, SYS_CHROOT: 18 };
const KEPT = { CHOWN: 0, DAC_OVERRIDE: 1, FOWNER: 3, SETGID: 6, SETUID: 7 };

/** Prints the process's status lines, then what each privileged act did. */
const PROBE = [
  'grep -E "^(NoNewPrivs|CapEff|CapBnd):" /proc/self/status',
  'mknod /tmp/null c 1 3 2>/dev/null && echo mknod=allowed || echo mknod=denied',
  'ping -c 1 -W 1 127.0.0.1 >/dev/null 2>&1 && echo ping=allowed || echo ping=denied',
  'chroot / true 2>/dev/null && echo chroot=allowed || echo chroot=denied',
  'chown 1:1 /tmp && echo chown=allowed || echo chown=denied',
  'su -s /bin/sh nobody -c true && echo su=allowed || echo su=denied',
].join('; ');

function field(stdout: string, name: string): string {
  const line = stdout.split('\n').find((l) => l.startsWith(`${name}:`) || l.startsWith(`${name}=`));
  return (line ?? '').slice(name.length + 1).trim();
}

describe('always-on hardening of job containers', () => {
  const world = useTestWorld();

  it.each([
    ['without network (a namespace holder)', { enabled: false }],
    ['with the default network', { enabled: true }],
  ])('a job %s gets no new privileges and lacks the dropped capabilities', async (_, network) => {
    await world.h.worker();
    const client = world.h.client();
    const { id } = await client.submit(busybox(['sh', '-c', PROBE], { network }));
    const result = await client.waitForResult(id, { timeoutMs: 30_000 });
    expect(result).toMatchObject({ state: 'Complete', exitCode: 0 });
    const out = await readFile(result.stdout.path as string, 'utf8');
    expect(field(out, 'NoNewPrivs'), out).toBe('1');
    for (const set of ['CapEff', 'CapBnd']) {
      const caps = BigInt(`0x${field(out, set)}`);
      for (const [name, bit] of Object.entries(DROPPED)) {
        expect((caps >> BigInt(bit)) & 1n, `${set} has ${name}`).toBe(0n);
      }
      for (const [name, bit] of Object.entries(KEPT)) {
        expect((caps >> BigInt(bit)) & 1n, `${set} lacks ${name}`).toBe(1n);
      }
    }
    expect(out).toMatch(/^mknod=denied$/m);
    expect(out).toMatch(/^ping=denied$/m);
    expect(out).toMatch(/^chroot=denied$/m);
    // What ordinary jobs do as root inside their container still works.
    expect(out).toMatch(/^chown=allowed$/m);
    expect(out).toMatch(/^su=allowed$/m);
  });

  it('runs the namespace holders at least as hardened as the jobs', async () => {
    await world.h.worker();
    const client = world.h.client();
    const { id } = await client.submit(busybox(['true']));
    await client.waitForResult(id, { timeoutMs: 30_000 });
    const holders = await testDocker().listContainers({
      filters: { label: [`${HOLDER_LABEL}=${world.h.queue}`] },
    });
    expect(holders.length).toBeGreaterThan(0);
    for (const holder of holders) {
      const { HostConfig } = await testDocker().getContainer(holder.Id).inspect();
      expect(HostConfig).toMatchObject({
        SecurityOpt: ['no-new-privileges'],
        CapDrop: ['ALL'],
        Privileged: false,
        PidsLimit: 1,
        ReadonlyRootfs: true,
      });
    }
  });

  it('bounds a fork bomb by the policy’s pids limit; the worker and the next job are unaffected', async () => {
    // The limits as users set them: pidsLimit and maxOutputBytes in the worker's policy file.
    const dir = await mkdtemp(join(tmpdir(), 'stevedore-hardening-'));
    const policyPath = await writePolicy(dir, {
      ...testPolicy(),
      pidsLimit: 64,
      maxOutputBytes: 1024 * 1024,
    });
    await world.h.worker({ policyPath });
    const client = world.h.client();
    // The bomb's subshells outlive the shell's `wait`, so the job watches the cgroup's own
    // counter of refused forks (cgroup v1's pids.events, v2's likewise) with shell builtins
    // only (a fork would be refused too) and ends once the limit has refused one; its exit
    // takes the rest of the bomb with it. maxRunTimeSeconds is the backstop.
    const cgroup = 'd=/sys/fs/cgroup/pids; [ -e $d/pids.max ] || d=/sys/fs/cgroup';
    const watch = 'until read l < $d/pids.events; [ "$l" != "max 0" ]; do :; done; echo "$l"';
    const bomb = `${cgroup}; echo max=$(cat $d/pids.max); bomb() { bomb | bomb & }; bomb; ${watch}`;
    const { id } = await client.submit(
      busybox(['sh', '-c', bomb], { maxRunTimeSeconds: 60, stopGraceSeconds: 0 }),
    );
    const result = await client.waitForResult(id, { timeoutMs: 90_000 });
    expect(result, JSON.stringify(result)).toMatchObject({ state: 'Complete', exitCode: 0 });
    const out = await readFile(result.stdout.path as string, 'utf8');
    expect(out).toMatch(/^max=64$/m);
    expect(Number(/^max (\d+)$/m.exec(out)?.[1]), out).toBeGreaterThan(0);
    const events = await readFile(join(dirname(result.stdout.path as string), 'events.log'), 'utf8');
    expect(events).toMatch(/ limits \{"pidsLimit":64,"maxOutputBytes":1048576\}/);

    const next = await client.submit(busybox(['sh', '-c', 'echo fine']));
    const after = await client.waitForResult(next.id, { timeoutMs: 30_000 });
    expect(after).toMatchObject({ state: 'Complete', exitCode: 0, stdout: { tail: 'fine\n' } });
    await rm(dir, { recursive: true, force: true });
  });
});
