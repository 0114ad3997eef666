/** Specs that fail validation, shared by the parser's unit tests and the worker's integration test. */

export const VALID_SPEC = { image: 'stevedore-test/busybox:1', command: ['true'] };

/** [what is wrong, the spec, the path and reason the message must name] */
export const INVALID_SPECS: [string, unknown, RegExp][] = [
  ['no image', { command: ['true'] }, /image: is required/],
  ['image not a string', { ...VALID_SPEC, image: 7 }, /image: .*string/i],
  ['empty image', { ...VALID_SPEC, image: '' }, /image: must not be empty/],
  ['image with spaces', { ...VALID_SPEC, image: 'a b' }, /image: must not contain whitespace/],
  ['no command', { image: 'x' }, /command: is required/],
  ['empty command', { ...VALID_SPEC, command: [] }, /command: must have at least one element/],
  ['command not an array', { ...VALID_SPEC, command: 'echo hi' }, /command: .*array/i],
  ['command with a number', { ...VALID_SPEC, command: ['echo', 1] }, /command\[1\]: .*string/i],
  [
    'empty program name',
    { ...VALID_SPEC, command: [''] },
    /command: must not start with an empty program name/,
  ],
  ['relative working dir', { ...VALID_SPEC, workingDir: 'work' }, /workingDir: must be an absolute path/],
  [
    'working dir with ..',
    { ...VALID_SPEC, workingDir: '/a/../etc' },
    /workingDir: must not contain "\.\." segments/,
  ],
  ['relative tarball', { ...VALID_SPEC, imageTarball: 'img.tar' }, /imageTarball: must be an absolute path/],
  [
    'env setting STEVEDORE_ATTEMPT',
    { ...VALID_SPEC, env: { STEVEDORE_ATTEMPT: '1' } },
    /env\.STEVEDORE_ATTEMPT: is set by Stevedore for every run/,
  ],
  [
    'env setting STEVEDORE_JOB_ID',
    { ...VALID_SPEC, env: { STEVEDORE_JOB_ID: 'mine' } },
    /env\.STEVEDORE_JOB_ID: is set by Stevedore for every run/,
  ],
  [
    'retry rule with an unknown reason',
    { ...VALID_SPEC, retry: { rules: [{ onReasons: ['bored'], action: 'retry' }] } },
    /retry\.rules\[0\]\.onReasons\[0\]: must be one of "oom", "timeout"/,
  ],
  [
    'retry rule with two matchers',
    { ...VALID_SPEC, retry: { rules: [{ onReasons: ['oom'], onExitCodes: [1], action: 'fail' }] } },
    /retry\.rules\[0\]: must have exactly one of onExitCodes, onSignals, onReasons \(it has 2\)/,
  ],
  [
    'retry with a negative limit',
    { ...VALID_SPEC, retry: { limit: -1 } },
    /retry\.limit: must not be negative/,
  ],
  [
    'retry with 21 rules',
    {
      ...VALID_SPEC,
      retry: { rules: Array.from({ length: 21 }, () => ({ onExitCodes: [1], action: 'fail' })) },
    },
    /retry\.rules: must have at most 20 rules/,
  ],
  [
    'retry rule on exit code 0 with In',
    {
      ...VALID_SPEC,
      retry: {
        rules: [
          { onExitCodes: [3], action: 'fail' },
          { onExitCodes: { operator: 'In', values: [1, 0] }, action: 'retry' },
        ],
      },
    },
    /retry\.rules\[1\]\.onExitCodes\.values\[1\]: must be between 1 and 255 \(exit code 0 is a success/,
  ],
  ['bad env name', { ...VALID_SPEC, env: { '1BAD': 'x' } }, /env\.1BAD: key is not a valid variable name/],
  ['env value not a string', { ...VALID_SPEC, env: { A: 1 } }, /env\.A: .*string/i],
  [
    'oversized env value',
    { ...VALID_SPEC, env: { BIG: 'x'.repeat(40_000) } },
    /env\.BIG: is longer than 32768 bytes/,
  ],
  [
    'relative mount host path',
    { ...VALID_SPEC, mounts: { '/in': { hostPath: 'data' } } },
    /mounts\.\/in\.hostPath: must be an absolute path/,
  ],
  [
    'relative mount target',
    { ...VALID_SPEC, mounts: { in: { hostPath: '/data' } } },
    /mounts\.in: key container path must be an absolute path/,
  ],
  ['mount onto /', { ...VALID_SPEC, mounts: { '/': { hostPath: '/data' } } }, /mounts\./],
  ['negative vcpus', { ...VALID_SPEC, resources: { vcpus: -1 } }, /resources\.vcpus: must be greater than 0/],
  ['absurd vcpus', { ...VALID_SPEC, resources: { vcpus: 1e6 } }, /resources\.vcpus: must be at most 1024/],
  [
    'zero ram',
    { ...VALID_SPEC, resources: { ram: 0 } },
    /resources\.ram: must be a positive whole number of bytes/,
  ],
  [
    'ram with a bad unit',
    { ...VALID_SPEC, resources: { ram: '12 parsecs' } },
    /resources\.ram: must be a byte count or a size/,
  ],
  ['absurd ram', { ...VALID_SPEC, resources: { ram: '900Ti' } }, /resources\.ram: must be at most 4Ti/],
  [
    'unknown gpu stack',
    { ...VALID_SPEC, resources: { gpus: { stack: 'metal', count: 1 } } },
    /resources\.gpus\.stack/,
  ],
  [
    'fractional gpu count',
    { ...VALID_SPEC, resources: { gpus: { stack: 'cuda', count: 1.5 } } },
    /resources\.gpus\.count: must be a whole number/,
  ],
  [
    'network enabled not boolean',
    { ...VALID_SPEC, network: { enabled: 'yes' } },
    /network\.enabled: .*boolean/i,
  ],
  ['bad base64 stdin', { ...VALID_SPEC, stdin: { base64: '***' } }, /stdin\.base64: is not valid base64/],
  [
    'negative max run time',
    { ...VALID_SPEC, maxRunTimeSeconds: -5 },
    /maxRunTimeSeconds: must be greater than 0/,
  ],
  ['negative stop grace', { ...VALID_SPEC, stopGraceSeconds: -1 }, /stopGraceSeconds: must not be negative/],
  ['unknown runtime', { ...VALID_SPEC, runtime: 'lxc' }, /runtime: /],
  ['unknown top-level field', { ...VALID_SPEC, imge: 'typo' }, /unknown field imge \(a typo\?\)/],
  ['unknown nested field', { ...VALID_SPEC, resources: { cpus: 2 } }, /resources: unknown field cpus/],
  ['not an object', 'echo hi', /\(spec\): .*object/i],
];
