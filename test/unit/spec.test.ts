import { describe, expect, it } from 'vitest';
import { InvalidSpecError } from '../../src/jobs/errors.js';
import { parseJobSpec, stdinBytes } from '../../src/jobs/spec.js';
import { SPEC_LIMITS } from '../../src/jobs/spec-limits.js';
import { INVALID_SPECS, VALID_SPEC } from '../helpers/invalid-specs.js';

const issuesOf = (input: unknown): InvalidSpecError => {
  try {
    parseJobSpec(input);
  } catch (error) {
    if (error instanceof InvalidSpecError) return error;
    throw error;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be rejected`);
};

describe('parseJobSpec', () => {
  it.each(INVALID_SPECS)('rejects: %s', (_what, spec, expected) => {
    expect(issuesOf(spec).message).toMatch(expected);
  });

  it('lists every bad field at once', () => {
    const error = issuesOf({ image: '', command: [], resources: { vcpus: 0 }, extra: true });
    expect(error.message).toMatch(/^invalid job spec \(4 problems\)/);
    expect(error.issues.map((issue) => issue.path).sort()).toEqual([
      '',
      'command',
      'image',
      'resources.vcpus',
    ]);
    expect(error.message).toContain('unknown field extra');
  });

  it('fills in the defaults of a minimal spec', () => {
    expect(parseJobSpec(VALID_SPEC)).toEqual({
      ...VALID_SPEC,
      env: {},
      mounts: {},
      resources: {},
      network: { enabled: false },
      stopGraceSeconds: 10,
      init: true,
      labels: {},
    });
  });

  it('takes ram as a size and mounts read-only unless told', () => {
    const spec = parseJobSpec({
      ...VALID_SPEC,
      resources: { ram: '512Mi', vcpus: 0.5 },
      mounts: { '/in': { hostPath: '/data' }, '/out': { hostPath: '/results', readOnly: false } },
    });
    expect(spec.resources).toEqual({ ram: 512 * 1024 ** 2, vcpus: 0.5 });
    expect(spec.mounts).toEqual({
      '/in': { hostPath: '/data', readOnly: true },
      '/out': { hostPath: '/results', readOnly: false },
    });
  });

  it('allows a max run time of up to 30 days, not a second more', () => {
    const max = SPEC_LIMITS.maxRunTimeSeconds;
    expect(max).toBe(30 * 24 * 3600);
    expect(parseJobSpec({ ...VALID_SPEC, maxRunTimeSeconds: max }).maxRunTimeSeconds).toBe(max);
    expect(issuesOf({ ...VALID_SPEC, maxRunTimeSeconds: max + 1 }).message).toMatch(
      /maxRunTimeSeconds: must be at most 2592000 \(30 days\)/,
    );
  });

  it('reads stdin as text or base64, and refuses more than the limit', () => {
    expect(stdinBytes(parseJobSpec({ ...VALID_SPEC, stdin: 'hi' }))).toEqual(Buffer.from('hi'));
    const base64 = Buffer.from([0, 255, 10]).toString('base64');
    expect(stdinBytes(parseJobSpec({ ...VALID_SPEC, stdin: { base64 } }))).toEqual(Buffer.from([0, 255, 10]));
    expect(stdinBytes(parseJobSpec(VALID_SPEC))).toBeUndefined();
    expect(issuesOf({ ...VALID_SPEC, stdin: 'x'.repeat(SPEC_LIMITS.stdinBytes + 1) }).message).toMatch(
      /stdin: is larger than 8388608 bytes/,
    );
  });

  it('refuses control characters in every path, and quotes a key that holds one', () => {
    const control = 'must not contain control characters (such as a newline)';
    for (const c of ['\n', '\r', '\t', '\u001b', '\u007f']) {
      const shown = JSON.stringify(`/in${c}x`);
      expect(issuesOf({ ...VALID_SPEC, mounts: { [`/in${c}x`]: { hostPath: '/srv' } } }).message).toBe(
        `invalid job spec (1 problem):\n  - mounts.${shown}: key container path ${control}`,
      );
      expect(issuesOf({ ...VALID_SPEC, mounts: { '/in': { hostPath: `/srv${c}` } } }).issues).toEqual([
        { path: 'mounts./in.hostPath', message: control },
      ]);
      expect(issuesOf({ ...VALID_SPEC, workingDir: `/w${c}` }).issues).toEqual([
        { path: 'workingDir', message: control },
      ]);
      expect(issuesOf({ ...VALID_SPEC, imageTarball: `/t${c}.tar` }).issues).toEqual([
        { path: 'imageTarball', message: control },
      ]);
    }
    // Everything else a file name may hold stays the runtimes' to escape or refuse.
    expect(
      parseJobSpec({ ...VALID_SPEC, mounts: { '/a b,c:d=é': { hostPath: '/srv/x y' } } }).mounts,
    ).toEqual({
      '/a b,c:d=é': { hostPath: '/srv/x y', readOnly: true },
    });
  });
});
