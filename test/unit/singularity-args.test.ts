import { describe, expect, it } from 'vitest';
import { type SingularityHostFacts, toSingularityArgs } from '../../src/executors/singularity/args.js';
import { executorSpec } from '../helpers/executor-spec.js';

const facts: SingularityHostFacts = {
  flavour: 'apptainer',
  sifPath: '/c/x.sif',
  cgroups: { available: true },
};

describe('toSingularityArgs', () => {
  it('runs exec --containall --cleanenv --no-home in / with no network, the SIF, then the command', () => {
    const c = toSingularityArgs(executorSpec(['echo', 'hi']), facts);
    expect(c.args).toEqual([
      'exec',
      '--containall',
      '--cleanenv',
      '--no-home',
      '--pwd',
      '/',
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

  it('binds host:ctr, with :ro for read-only mounts', () => {
    const c = toSingularityArgs(
      executorSpec(['true'], {
        bindMounts: {
          '/in': { hostPath: '/srv/in', readOnly: true },
          '/out': { hostPath: '/srv/out', readOnly: false },
        },
      }),
      facts,
    );
    expect(c.args).toEqual(expect.arrayContaining(['--bind', '/srv/in:/in:ro', '--bind', '/srv/out:/out']));
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
      memoryBytes: 6 * 1024 * 1024,
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
  });
});
