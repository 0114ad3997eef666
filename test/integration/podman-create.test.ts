import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ExecutorSpec } from '../../src/executors/executor.js';
import { DockerExecutor } from '../../src/executors/index.js';
import { MIN_MEMORY_BYTES } from '../../src/executors/limits.js';
import { TEST_IMAGE, testImageTarball, testLabels } from '../helpers/docker.js';
import { executorSpec, type TestExecutorSpec } from '../helpers/executor-spec.js';
import { openTestPodman } from '../helpers/podman.js';

/**
 * What a Podman job can reach, made through libpod's create: mounts taken literally, env exactly
 * the job's, the Docker hardening, and 127 for a missing command. Each case failed when jobs were
 * made through Podman's Docker-compatible create.
 */
const { podman, reason } = await openTestPodman('podman-create-holders');
if (reason) console.warn(`[skip] podman create: ${reason}`);
afterAll(async () => {
  expect(await podman?.close()).toEqual([]);
});

/** Capability numbers (linux/capability.h). */
const CAP = { SYS_ADMIN: 21, NET_ADMIN: 12, SYS_MODULE: 16, SYS_PTRACE: 19, MKNOD: 27, NET_RAW: 13 };

describe.skipIf(podman === null)('podman job containers (libpod create)', () => {
  const open: DockerExecutor[] = [];
  const dirs: string[] = [];

  afterEach(async () => {
    for (const e of open.splice(0)) await e.close();
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  async function tempDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'stevedore-podman-create-'));
    dirs.push(dir);
    return dir;
  }

  async function run(
    command: string[],
    extra: Partial<ExecutorSpec> = {},
  ): Promise<{ spec: TestExecutorSpec; executor: DockerExecutor; exitCode: number }> {
    const runtime = (podman as NonNullable<typeof podman>).runtime;
    const executor = new DockerExecutor({
      runtime,
      labels: testLabels(expect.getState().currentTestName?.slice(0, 200) ?? 'podman create'),
    });
    open.push(executor);
    const spec = executorSpec(command, extra);
    const loaded = await executor.loadImage({
      image: TEST_IMAGE,
      tarballPath: testImageTarball(),
      pullPolicy: 'if-not-present',
    });
    await executor.create(spec, loaded);
    await executor.start();
    return { spec, executor, exitCode: await executor.wait() };
  }

  /** A host directory outside every mount with a secret in it, and where a write would land. */
  async function hostSecrets(): Promise<{ dir: string; secret: string }> {
    const dir = await tempDir();
    await writeFile(join(dir, 'secret.txt'), 'top-secret\n', { mode: 0o600 });
    return { dir, secret: join(dir, 'secret.txt') };
  }

  /** Tries to read the secret and write beside it through every path the mount could have become. */
  function reach(prefixes: string[], dir: string): string[] {
    const tries = prefixes.flatMap((p) => [
      `cat "${p}${dir}/secret.txt" 2>/dev/null && echo "READ via ${p}"`,
      `touch "${p}${dir}/pwned" 2>/dev/null && echo "WROTE via ${p}"`,
    ]);
    return ['sh', '-c', `${tries.join('; ')}; true`];
  }

  it('takes a mount target of "/x,source=/" literally: the host\'s / is nowhere in the job', async () => {
    const { dir } = await hostSecrets();
    const mounted = await tempDir();
    const target = '/x,source=/';
    const command = reach(['/x', '/x,source=', target], dir);
    command[2] += `; echo data > "${target}written"; ls / | tr '\\n' ' '`;
    const r = await run(command, { bindMounts: { [target]: { hostPath: mounted, readOnly: false } } });
    expect(r.exitCode).toBe(0);
    expect(r.spec.stdout.text).not.toMatch(/READ|WROTE|top-secret/);
    expect(await readdir(dir)).toEqual(['secret.txt']);
    // The mount is there, under its literal name, and writes land in its host directory.
    expect(await readFile(join(mounted, 'written'), 'utf8')).toBe('data\n');
    expect(r.spec.stdout.text).toContain('x,source=');
  });

  it('takes a host path containing ",source=/" literally: the job sees that directory, not the host\'s /', async () => {
    const { dir } = await hostSecrets();
    const parent = await tempDir();
    const hostDir = join(parent, 'd,source=');
    await mkdir(hostDir);
    for (const readOnly of [true, false]) {
      const r = await run(
        ['sh', '-c', `${reach(['/data'], dir)[2]}; echo rw > /data/written 2>/dev/null; ls /data`],
        { bindMounts: { '/data': { hostPath: `${hostDir}/`, readOnly } } },
      );
      expect(r.exitCode).toBe(0);
      expect(r.spec.stdout.text).not.toMatch(/READ|WROTE|top-secret/);
      expect(await readdir(dir)).toEqual(['secret.txt']);
    }
    expect(await readFile(join(hostDir, 'written'), 'utf8')).toBe('rw\n');
  });

  it('takes a host path "<allowed>/d,source=<elsewhere>" literally: the job sees that directory, not <elsewhere>', async () => {
    const { dir } = await hostSecrets();
    // A real directory of that name, as a job with a read-write area could make and then name.
    const hostPath = join(await tempDir(), `d,source=${dir}`);
    await mkdir(hostPath, { recursive: true });
    const r = await run(
      ['sh', '-c', 'cat /data/secret.txt 2>/dev/null && echo READ; touch /data/pwned; ls -A /data'],
      { bindMounts: { '/data': { hostPath, readOnly: false } } },
    );
    expect(r.exitCode).toBe(0);
    expect(r.spec.stdout.text).toBe('pwned\n');
    expect(await readdir(dir)).toEqual(['secret.txt']);
    expect(await readdir(hostPath)).toEqual(['pwned']);
  });

  it("gives exactly the spec's env over the image's: no container or TERM from Podman", async () => {
    const r = await run(['env'], { env: { A: '1', B: 'two words', EMPTY: '' } });
    const vars = new Map(
      r.spec.stdout.text
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
    );
    expect(Object.fromEntries(vars)).toMatchObject({ A: '1', B: 'two words', EMPTY: '', PATH: '/bin' });
    // HOME and HOSTNAME as Docker sets them; PATH is the image's.
    expect([...vars.keys()].sort()).toEqual(['A', 'B', 'EMPTY', 'HOME', 'HOSTNAME', 'PATH']);
    const own = await run(['sh', '-c', 'echo "$PATH $TERM"'], {
      env: { PATH: '/usr/bin:/bin', TERM: 'dumb' },
    });
    expect(own.spec.stdout.text).toBe('/usr/bin:/bin dumb\n');
  });

  it('exits 127 for a missing command under the init, and tini says which, as on Docker', async () => {
    const r = await run(['no-such-program', 'x']);
    expect(r.exitCode).toBe(127);
    expect(r.spec.stderr.text).toMatch(/exec no-such-program failed: No such file or directory/);
  });

  it('holds every hardening of a Docker job', async () => {
    const probe = [
      'grep -E "^(NoNewPrivs|CapEff|CapBnd|Seccomp):" /proc/self/status',
      'echo pids=$(cat /sys/fs/cgroup/pids/pids.max)',
      'echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)',
      'echo memsw=$(cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes)',
      'echo quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)',
      'mount -t tmpfs none /mnt 2>/dev/null && echo mount=allowed || echo mount=denied',
      'mknod /tmp/null c 1 3 2>/dev/null && echo mknod=allowed || echo mknod=denied',
      'echo ifaces=$(ls /sys/class/net | tr "\\n" " ")',
      'echo cwd=$(pwd)',
    ].join('; ');
    const r = await run(['sh', '-c', probe], {
      pidsLimit: 64,
      ramBytes: 64 * 1024 * 1024,
      vcpus: 0.5,
      workingDir: '/tmp',
    });
    const out = r.spec.stdout.text;
    expect(r.exitCode, out).toBe(0);
    const field = (name: string): string => new RegExp(`^${name}[:=]\\s*(.*)$`, 'm').exec(out)?.[1] ?? '';
    expect(field('NoNewPrivs')).toBe('1');
    expect(field('Seccomp')).toBe('2'); // a filter: libpod's default profile
    for (const set of ['CapEff', 'CapBnd']) {
      const caps = BigInt(`0x${field(set)}`);
      for (const [name, bit] of Object.entries(CAP))
        expect((caps >> BigInt(bit)) & 1n, `${set} has ${name}`).toBe(0n);
    }
    expect(field('pids')).toBe('64');
    expect(field('mem')).toBe(String(64 * 1024 * 1024));
    expect(field('memsw')).toBe(String(64 * 1024 * 1024));
    expect(field('quota')).toBe('50000');
    expect(field('mount')).toBe('denied');
    expect(field('mknod')).toBe('denied');
    expect(field('cwd')).toBe('/tmp');
    // No network: loopback only, in a namespace of its own (Podman gets no holders).
    expect(field('ifaces').trim()).toBe('lo');
    const info = await (podman as NonNullable<typeof podman>).runtime.docker
      .getContainer(r.executor.containerId)
      .inspect();
    expect(info.HostConfig).toMatchObject({ NetworkMode: 'none', Privileged: false, PidsLimit: 64 });
  });

  it('raises a memory limit below the minimum to it, as on Docker, and gives the default pids limit', async () => {
    const r = await run(
      ['sh', '-c', 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max'],
      { ramBytes: 1000, enableNetwork: true, networkMode: 'default' },
    );
    expect(r.exitCode).toBe(0);
    const [memory, pids] = r.spec.stdout.text.trim().split('\n');
    expect(Number(memory)).toBe(MIN_MEMORY_BYTES);
    expect(pids).toBe('4096');
  });
});
