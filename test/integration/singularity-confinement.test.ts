import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ExecutorSpec } from '../../src/executors/executor.js';
import { SingularityRuntime } from '../../src/executors/singularity/runtime.js';
import { SingularityExecutor } from '../../src/executors/singularity/singularity-executor.js';
import { TEST_IMAGE, testImageTarball, testLabels } from '../helpers/docker.js';
import { executorSpec } from '../helpers/executor-spec.js';
import { testSingularityBin } from '../helpers/singularity.js';

// What an Apptainer job run by a root worker can reach: each check is a real job that tries.
const bin = await testSingularityBin();
const asRoot = process.getuid?.() === 0;
const skip = bin === null ? 'neither apptainer nor singularity is installed' : asRoot ? null : 'needs root';

/** Capability bits (linux/capability.h). */
const CAP = { NET_ADMIN: 12, SYS_MODULE: 16, SYS_PTRACE: 19, SYS_ADMIN: 21, MKNOD: 27 };
/** What a Docker job of ours keeps: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID NET_BIND_SERVICE. */
const JOB_CAP_MASK = 0x4fbn;

describe.skipIf(skip !== null)('Apptainer jobs are confined like Docker jobs', () => {
  if (skip !== null) console.warn(`[skip] Apptainer confinement: ${skip}`);
  let dir: string;
  let runtime: SingularityRuntime;
  const open: SingularityExecutor[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stevedore-sif-confine-'));
    runtime = await SingularityRuntime.open({
      bin: bin as string,
      sifCache: join(dir, 'sif'),
      stateDir: join(dir, 'state'),
    });
  });

  afterEach(async () => {
    for (const e of open.splice(0)) await e.close();
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function run(script: string, extra: Partial<ExecutorSpec> = {}) {
    const e = new SingularityExecutor({ runtime, labels: testLabels('apptainer confinement') });
    open.push(e);
    const spec = executorSpec(['sh', '-c', script], extra);
    const loaded = await e.loadImage({
      image: TEST_IMAGE,
      tarballPath: testImageTarball(),
      pullPolicy: 'if-not-present',
    });
    await e.create(spec, loaded);
    await e.start();
    const exitCode = await e.wait();
    return { exitCode, stdout: spec.stdout.text, stderr: spec.stderr.text };
  }

  it('holds only the capabilities a Docker job keeps, with no-new-privileges and a seccomp filter', async () => {
    const r = await run('grep -E "^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs|Seccomp):" /proc/self/status');
    expect(r.exitCode).toBe(0);
    const status = Object.fromEntries(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => l.split(/:\s+/)),
    );
    for (const set of ['CapEff', 'CapPrm', 'CapBnd', 'CapAmb']) {
      const bits = BigInt(`0x${status[set]}`);
      expect(bits & ~JOB_CAP_MASK, `${set} ${status[set]}`).toBe(0n);
      for (const [name, bit] of Object.entries(CAP))
        expect(bits & (1n << BigInt(bit)), `${set} holds CAP_${name}`).toBe(0n);
    }
    expect(status.CapEff).toBe('00000000000004fb');
    expect(status.NoNewPrivs).toBe('1');
    expect(status.Seccomp).toBe('2');
  });

  it('cannot mount, not even from a user namespace of its own', async () => {
    const r = await run(
      'mount -t tmpfs none /mnt && echo MOUNTED; mount -t devtmpfs none /mnt && echo DEVTMPFS; ' +
        'unshare -U -r -m sh -c "mount -t tmpfs none /mnt && echo USERNS-MOUNTED"; ' +
        'unshare -m sh -c "mount -t tmpfs none /mnt && echo MOUNTNS-MOUNTED"; grep -c " /mnt " /proc/mounts',
    );
    expect(r.stdout).toBe('0\n');
    expect(r.stderr).toMatch(/permission denied|not permitted/i);
  });

  it('cannot load a kernel module', async () => {
    const r = await run('head -c 4096 /dev/zero > /tmp/m.ko; insmod /tmp/m.ko; echo rc=$?');
    expect(r.stdout).toBe('rc=1\n');
    // With CAP_SYS_MODULE the kernel would read the file and call it no module instead.
    expect(r.stderr).toMatch(/Operation not permitted/);
    expect(r.stderr).not.toMatch(/Exec format|Invalid module/i);
  });

  it('sees no host process and cannot make device nodes', async () => {
    const r = await run(
      'for p in /proc/[0-9]*; do cat $p/cmdline | tr "\\0" " "; echo; done; ' +
        'mknod /tmp/disk b 8 0 && echo MADE""NODE; mknod /dev/disk b 8 0 && echo MADE""NODE; true',
    );
    expect(r.exitCode).toBe(0);
    // Its own PID namespace: Apptainer's init, sh and the loop's own children only.
    const commands = r.stdout.trim().split('\n');
    expect(commands.length).toBeLessThan(8);
    expect(commands.join('\n')).not.toMatch(/node|vitest|dockerd|redis/);
    expect(r.stdout).not.toMatch(/MADENODE/);
    expect(r.stderr).toMatch(/mknod: \/tmp\/disk: Operation not permitted/);
  });

  it('cannot change its own network, nor the host network it shares', async () => {
    const own = await run(
      'ip link set lo down && echo LO-DOWN; ip link add stv0 type dummy && echo ADDED; ip link show lo | grep -c UP',
    );
    expect(own.stdout).toBe('1\n');
    // The host's network namespace: setting lo's MTU to what it is changes nothing, yet needs CAP_NET_ADMIN.
    const host = await run(
      'mtu=$(ip -o link show lo | sed "s/.* mtu \\([0-9]*\\) .*/\\1/"); ip link set lo mtu $mtu && echo MTU-SET; ' +
        'v=$(cat /proc/sys/net/ipv4/ip_forward); echo $v > /proc/sys/net/ipv4/ip_forward && echo FORWARD-WRITTEN; true',
      { enableNetwork: true, networkMode: 'host' },
    );
    expect(host.stdout).toBe('');
    expect(host.stderr).toMatch(/not permitted/i);
    expect(host.stderr).toMatch(/Read-only file system/);
  });

  it("cannot write the host's sysctls, sysfs or /etc/localtime (uid 0 may, by file mode alone)", async () => {
    const r = await run(
      'v=$(cat /proc/sys/kernel/printk_ratelimit) && echo $v > /proc/sys/kernel/printk_ratelimit && echo SYSCTL-WRITTEN; ' +
        'ls -A /sys | wc -l; grep -c -E " /etc/localtime | /proc/sys (proc|sysfs) rw" /proc/mounts; ' +
        'grep -E " /proc/sys " /proc/mounts | cut -d" " -f4 | cut -d, -f1',
    );
    expect(r.stdout).toBe('0\n0\nro\n');
    expect(r.stderr).toMatch(/Read-only file system/);
  });

  it("has an /etc/hosts of its own that names localhost (none of the host's binds), read-only", async () => {
    const r = await run(
      'grep -c "^127.0.0.1[[:space:]]localhost" /etc/hosts; echo x >> /etc/hosts || echo RO',
    );
    expect(r.stdout).toBe('1\nRO\n');
  });

  describe('mounts', () => {
    let host: string;

    beforeAll(async () => {
      host = join(dir, 'host');
      await mkdir(join(host, 'a,b:c=d"e'), { recursive: true });
      await writeFile(join(host, 'a,b:c=d"e', 'marker'), 'odd\n');
      await mkdir(join(host, 'plain'), { recursive: true });
      await writeFile(join(host, 'plain', 'marker'), 'plain\n');
    });

    it('takes a container path with , and : literally: one read-only bind, no bind of the host /', async () => {
      const r = await run(
        'cat "/h1,/:/h2/marker"; ls /h2 >/dev/null 2>&1 && echo H2-EXISTS; ls /h1 >/dev/null 2>&1 && echo H1-EXISTS; ' +
          'echo x > "/h1,/:/h2/w" || echo READ-ONLY',
        { bindMounts: { '/h1,/:/h2': { hostPath: join(host, 'plain'), readOnly: true } } },
      );
      expect(r.stdout).toBe('plain\nREAD-ONLY\n');
    });

    it('takes a host path with , : = and " literally, and keeps every read-only mount read-only', async () => {
      const r = await run(
        'cat /odd/marker /plain/marker; echo x > /odd/w || echo RO1; echo x > /plain/w || echo RO2',
        {
          bindMounts: {
            '/odd': { hostPath: join(host, 'a,b:c=d"e'), readOnly: true },
            '/plain': { hostPath: join(host, 'plain'), readOnly: true },
          },
        },
      );
      expect(r.stdout).toBe('odd\nplain\nRO1\nRO2\n');
      await expect(readFile(join(host, 'plain', 'w'))).rejects.toThrow(/ENOENT/);
    });
  });

  it('keeps the env to the spec plus only what Apptainer will not let go', async () => {
    const r = await run('env', { env: { A: '1', LANG: 'fr_FR.UTF-8' } });
    const names = r.stdout
      .trim()
      .split('\n')
      .map((l) => l.slice(0, l.indexOf('=')))
      .sort();
    expect(names).toEqual([
      'A',
      'APPTAINER_CONTAINER',
      'APPTAINER_ENVIRONMENT',
      'APPTAINER_NAME',
      'HOME',
      'LANG',
      'PATH',
      'PROMPT_COMMAND',
      'PS1',
      'PWD',
      'SHLVL',
      'SINGULARITY_ENVIRONMENT',
    ]);
    expect(r.stdout).toMatch(/^LANG=fr_FR\.UTF-8$/m);
  });

  it.each([1, 4 * 1024 * 1024, 6 * 1024 * 1024])(
    'a RAM limit of %i bytes is raised so that true exits 0',
    async (ramBytes) => {
      const r = await run('true', { ramBytes });
      expect(r.exitCode).toBe(0);
    },
  );
});
