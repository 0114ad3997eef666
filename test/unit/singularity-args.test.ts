import { describe, expect, it } from 'vitest';
import { DROPPED_CAPABILITIES } from '../../src/executors/docker/create-options.js';
import { MIN_MEMORY_BYTES } from '../../src/executors/limits.js';
import { type SingularityHostFacts, toSingularityArgs } from '../../src/executors/singularity/args.js';
import { envScript } from '../../src/executors/singularity/env-script.js';
import {
  BLOCKED_SYSCALLS,
  type HardeningFacts,
  JOB_CAPABILITIES,
  seccompProfile,
} from '../../src/executors/singularity/hardening.js';
import { mountArg, mountPathProblem } from '../../src/executors/singularity/mounts.js';
import { executorSpec } from '../helpers/executor-spec.js';

const unconfined: HardeningFacts = {
  root: false,
  seccompProfile: null,
  readOnlyPaths: [],
  maskedDirs: [],
  emptyDir: '/s/empty',
  hostsFile: '/s/hosts',
};

const HOSTS_MOUNT = 'type=bind,"source=/s/hosts","destination=/etc/hosts",ro';

const facts: SingularityHostFacts = {
  flavour: 'apptainer',
  sifPath: '/c/x.sif',
  cgroups: { available: true },
  hardening: unconfined,
  envScriptPath: '/s/env/j.sh',
};

const ENV_SCRIPT_MOUNT =
  'type=bind,"source=/s/env/j.sh","destination=/.singularity.d/env/99-zz-stevedore.sh",ro';

/** The values of every `flag` in args. */
function values(args: string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag ? [args[i + 1] as string] : []));
}

/** Docker's default capability set (moby oci/caps/defaults.go), as the kernel names them. */
const DOCKER_DEFAULT_CAPS = [
  'CHOWN',
  'DAC_OVERRIDE',
  'FSETID',
  'FOWNER',
  'MKNOD',
  'NET_RAW',
  'SETGID',
  'SETUID',
  'SETFCAP',
  'SETPCAP',
  'NET_BIND_SERVICE',
  'SYS_CHROOT',
  'KILL',
  'AUDIT_WRITE',
];

describe('toSingularityArgs', () => {
  it('runs exec --containall --cleanenv --no-home, confined, in / with no network, the SIF, then the command', () => {
    const c = toSingularityArgs(executorSpec(['echo', 'hi']), facts);
    expect(c.args).toEqual([
      'exec',
      '--containall',
      '--cleanenv',
      '--no-home',
      '--no-mount',
      'sys,bind-paths',
      '--no-privs',
      '--mount',
      HOSTS_MOUNT,
      '--pwd',
      '/',
      '--mount',
      ENV_SCRIPT_MOUNT,
      '--net',
      '--network',
      'none',
      '/c/x.sif',
      'echo',
      'hi',
    ]);
    expect(c.env).toEqual({ PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' });
    expect(c.notApplied).toEqual([]);
  });

  it('maps the working dir, and --no-init when init is off', () => {
    const c = toSingularityArgs(executorSpec(['pwd'], { workingDir: '/work', init: false }), facts);
    expect(c.args).toContain('--no-init');
    expect(c.args.slice(c.args.indexOf('--pwd'), c.args.indexOf('--pwd') + 2)).toEqual(['--pwd', '/work']);
  });

  it('passes exactly the spec env: --env on Apptainer, SINGULARITYENV_ on SingularityCE', () => {
    const spec = executorSpec(['env'], { env: { B: 'x,y', A: '1' } });
    expect(toSingularityArgs(spec, facts).args).toEqual(
      expect.arrayContaining(['--env', 'A=1', '--env', 'B=x,y']),
    );
    const ce = toSingularityArgs(spec, { ...facts, flavour: 'singularity' });
    expect(ce.args).not.toContain('--env');
    expect(ce.env).toMatchObject({ SINGULARITYENV_A: '1', SINGULARITYENV_B: 'x,y' });
  });

  it('binds each mount with one --mount, quoted, with ro for read-only mounts; never --bind', () => {
    const c = toSingularityArgs(
      executorSpec(['true'], {
        bindMounts: {
          '/in': { hostPath: '/srv/in', readOnly: true },
          '/out': { hostPath: '/srv/out', readOnly: false },
        },
      }),
      facts,
    );
    expect(values(c.args, '--mount')).toEqual([
      HOSTS_MOUNT,
      'type=bind,"source=/srv/in","destination=/in",ro',
      'type=bind,"source=/srv/out","destination=/out"',
      ENV_SCRIPT_MOUNT,
    ]);
    expect(c.args).not.toContain('--bind');
  });

  it('keeps , : = and " in paths inside one quoted CSV field each (no second bind, no lost ro)', () => {
    const c = toSingularityArgs(
      executorSpec(['true'], {
        bindMounts: {
          '/h1,/:/h2': { hostPath: '/srv/a', readOnly: true },
          '/q': { hostPath: '/srv/x"y,source=/', readOnly: true },
        },
      }),
      facts,
    );
    expect(values(c.args, '--mount').slice(1, 3)).toEqual([
      'type=bind,"source=/srv/a","destination=/h1,/:/h2",ro',
      'type=bind,"source=/srv/x""y,source=/","destination=/q",ro',
    ]);
  });

  it("mountArg quotes each field, and mountPathProblem refuses only \\r\\n (which Go's CSV reader rewrites)", () => {
    expect(mountArg('/a\nb', '/c', false)).toBe('type=bind,"source=/a\nb","destination=/c"');
    expect(mountPathProblem('/a,b:c=d"e\nf\rg')).toBeNull();
    expect(mountPathProblem('/a\r\nb')).toMatch(/carriage return followed by a line feed/);
  });

  it.each([
    ['default', ['--net', '--network', 'bridge']],
    ['bridge', ['--net', '--network', 'bridge']],
    ['mycni', ['--net', '--network', 'mycni']],
  ])('network mode %s maps to %j', (mode, flags) => {
    const c = toSingularityArgs(executorSpec(['true'], { enableNetwork: true, networkMode: mode }), facts);
    expect(c.args.join(' ')).toContain(flags.join(' '));
  });

  it('network mode host uses the host namespace (no --net)', () => {
    const c = toSingularityArgs(executorSpec(['true'], { enableNetwork: true, networkMode: 'host' }), facts);
    expect(c.args).not.toContain('--net');
  });

  it('puts CPU, memory (raised to the minimum) and pids into the cgroup limits', () => {
    expect(
      toSingularityArgs(executorSpec(['true'], { vcpus: 1.5, ramBytes: 1000, pidsLimit: 64 }), facts).limits,
    ).toEqual({
      cpuPeriodUs: 100_000,
      cpuQuotaUs: 150_000,
      memoryBytes: MIN_MEMORY_BYTES,
      pidsMax: 64,
    });
    expect(toSingularityArgs(executorSpec(['true']), facts).limits).toEqual({ pidsMax: 4096 });
  });

  it('says which limits could not be applied, and why, when there is no cgroup', () => {
    const c = toSingularityArgs(executorSpec(['true'], { vcpus: 2, ramBytes: 1 << 30 }), {
      ...facts,
      cgroups: { available: false, why: 'not root' },
    });
    expect(c.limits).toEqual({});
    expect(c.notApplied).toEqual([
      `vcpus 2: not root`,
      `ram ${1 << 30} bytes: not root`,
      'pidsLimit 4096: not root',
    ]);
  });

  it('maps GPUs to --nv / --rocm with the visible-devices variables', () => {
    const cuda = toSingularityArgs(executorSpec(['true'], { gpu: { stack: 'cuda', deviceCount: 2 } }), {
      ...facts,
      cudaVisibleDevices: '3,5,7',
    });
    expect(cuda.args).toEqual(expect.arrayContaining(['--nv', '--env', 'CUDA_VISIBLE_DEVICES=3,5']));
    const rocm = toSingularityArgs(executorSpec(['true'], { gpu: { stack: 'rocm', deviceCount: 1 } }), facts);
    expect(rocm.args).toEqual(expect.arrayContaining(['--rocm', '--env', 'ROCR_VISIBLE_DEVICES=0']));
    // The driver libraries --nv binds in are found through Apptainer's LD_LIBRARY_PATH.
    expect(cuda.envScript).not.toContain('LD_LIBRARY_PATH');
  });

  it('as root: no privileges but the capabilities a Docker job keeps, seccomp, read-only /proc paths', () => {
    const c = toSingularityArgs(executorSpec(['true']), {
      ...facts,
      hardening: {
        root: true,
        seccompProfile: '/s/seccomp.json',
        readOnlyPaths: ['/proc/sys', '/proc/irq'],
        maskedDirs: ['/proc/sys/fs/binfmt_misc'],
        emptyDir: '/s/empty',
        hostsFile: '/s/hosts',
      },
    });
    expect(c.args.slice(0, 14)).toEqual([
      'exec',
      '--containall',
      '--cleanenv',
      '--no-home',
      '--no-mount',
      'sys,bind-paths',
      '--no-privs',
      '--mount',
      HOSTS_MOUNT,
      '--add-caps',
      'CAP_CHOWN,CAP_DAC_OVERRIDE,CAP_FOWNER,CAP_FSETID,CAP_KILL,CAP_NET_BIND_SERVICE,CAP_SETGID,CAP_SETUID',
      '--security',
      'seccomp:/s/seccomp.json',
      '--mount',
    ]);
    expect(values(c.args, '--mount')).toEqual([
      HOSTS_MOUNT,
      'type=bind,"source=/proc/sys","destination=/proc/sys",ro',
      'type=bind,"source=/proc/irq","destination=/proc/irq",ro',
      'type=bind,"source=/s/empty","destination=/proc/sys/fs/binfmt_misc",ro',
      ENV_SCRIPT_MOUNT,
    ]);
    expect(c.args).not.toContain('--keep-privs');
  });

  it("keeps exactly the capabilities of Docker's default set that a Docker job keeps", () => {
    const docker = DOCKER_DEFAULT_CAPS.filter((cap) => !DROPPED_CAPABILITIES.includes(cap));
    expect([...JOB_CAPABILITIES].sort()).toEqual(docker.map((cap) => `CAP_${cap}`).sort());
    for (const admin of ['CAP_SYS_ADMIN', 'CAP_SYS_MODULE', 'CAP_SYS_PTRACE', 'CAP_NET_ADMIN', 'CAP_MKNOD'])
      expect(JOB_CAPABILITIES).not.toContain(admin);
  });

  it('the seccomp profile refuses namespaces and mounting, allows the rest, for 64- and 32-bit code', () => {
    const profile = JSON.parse(seccompProfile('x64')) as {
      defaultAction: string;
      architectures: string[];
      syscalls: { names: string[]; action: string; args?: { index: number; value: number; op: string }[] }[];
    };
    expect(profile.defaultAction).toBe('SCMP_ACT_ALLOW');
    expect(profile.architectures).toEqual(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    expect(profile.syscalls[0]).toEqual({ names: [...BLOCKED_SYSCALLS], action: 'SCMP_ACT_ERRNO' });
    for (const name of ['unshare', 'setns', 'mount', 'init_module', 'finit_module', 'keyctl', 'bpf'])
      expect(BLOCKED_SYSCALLS).toContain(name);
    const cloneFlags = profile.syscalls
      .filter((s) => s.names.includes('clone'))
      .map((s) => s.args?.[0]?.value);
    expect(cloneFlags).toContain(0x1000_0000); // CLONE_NEWUSER
    expect(cloneFlags).toContain(0x0002_0000); // CLONE_NEWNS
    expect(JSON.parse(seccompProfile('riscv64')).architectures).toEqual([]);
  });
});

describe('envScript', () => {
  it("clears Apptainer's own variables and LD_LIBRARY_PATH, except those the spec sets", () => {
    expect(
      envScript([], false)
        .split('\n')
        .filter((l) => !l.startsWith('#')),
    ).toEqual([
      'APPTAINER_APPNAME=',
      'APPTAINER_BIND=',
      'APPTAINER_COMMAND=',
      'LANG=',
      'SINGULARITY_BIND=',
      'SINGULARITY_CONTAINER=',
      'SINGULARITY_NAME=',
      'unset LD_LIBRARY_PATH',
      '',
    ]);
    const own = envScript(['LANG', 'LD_LIBRARY_PATH'], false);
    expect(own).not.toMatch(/^LANG=/m);
    expect(own).not.toContain('LD_LIBRARY_PATH');
  });

  it('SingularityCE gets no env script (its action script is not the one checked)', () => {
    expect(
      toSingularityArgs(executorSpec(['true']), { ...facts, flavour: 'singularity' }).envScript,
    ).toBeNull();
  });
});
