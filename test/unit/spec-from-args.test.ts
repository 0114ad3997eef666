import { describe, expect, it } from 'vitest';
import { specFromArgs } from '../../src/cli/spec-from-args.js';

describe('specFromArgs', () => {
  it('--no-init turns the init off; without it the spec leaves the default', () => {
    expect(specFromArgs({ image: 'i', 'no-init': true }, ['true'])).toMatchObject({ init: false });
    expect(specFromArgs({ image: 'i' }, ['true'])).not.toHaveProperty('init');
  });

  it('builds a spec from flags and the command after --', () => {
    expect(
      specFromArgs(
        {
          image: 'busybox',
          env: ['A=1', 'B=x=y'],
          mount: ['/in=/srv/in', '/out=/srv/out:rw'],
          vcpus: '2',
          ram: '512Mi',
          network: true,
          'max-run-time': '60',
          label: ['team=qa'],
        },
        ['echo', 'hi'],
      ),
    ).toEqual({
      image: 'busybox',
      command: ['echo', 'hi'],
      env: { A: '1', B: 'x=y' },
      mounts: {
        '/in': { hostPath: '/srv/in', readOnly: true },
        '/out': { hostPath: '/srv/out', readOnly: false },
      },
      resources: { vcpus: 2, ram: '512Mi' },
      network: { enabled: true },
      maxRunTimeSeconds: 60,
      labels: { team: 'qa' },
    });
  });

  it('lets flags override a file and merges env key by key', () => {
    const spec = specFromArgs({ env: ['B=2'], ram: '1024' }, [], {
      image: 'file-image',
      command: ['true'],
      env: { A: '1', B: '1' },
      resources: { vcpus: 1 },
    });
    expect(spec).toEqual({
      image: 'file-image',
      command: ['true'],
      env: { A: '1', B: '2' },
      resources: { vcpus: 1, ram: 1024 },
    });
  });

  it.each([
    [{ env: ['NOEQUALS'] }, /--env "NOEQUALS": expected NAME=VALUE/],
    [{ mount: ['/only'] }, /--mount "\/only": expected CONTAINER_PATH=HOST_PATH/],
    [{ vcpus: 'two' }, /--vcpus "two": expected a number/],
  ])('rejects bad flags clearly: %j', (flags, expected) => {
    expect(() => specFromArgs(flags, ['true'])).toThrow(expected);
  });
});
