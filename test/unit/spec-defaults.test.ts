import { describe, expect, it } from 'vitest';
import { parseJobSpec } from '../../src/jobs/spec.js';

const valid = { image: 'img:1', command: ['true'] };

describe('job spec: init', () => {
  it('defaults to true and can be turned off', () => {
    expect(parseJobSpec(valid).init).toBe(true);
    expect(parseJobSpec({ ...valid, init: false }).init).toBe(false);
  });

  it('must be a boolean', () => {
    expect(() => parseJobSpec({ ...valid, init: 'no' })).toThrow(/init: must be a boolean, not string/);
  });
});

describe('job spec: mount paths', () => {
  it('keeps ":" and "," as path characters (they reach the engine as structured Mounts)', () => {
    const spec = parseJobSpec({ ...valid, mounts: { '/x:rshared': { hostPath: '/srv/a,b:c' } } });
    expect(spec.mounts).toEqual({ '/x:rshared': { hostPath: '/srv/a,b:c', readOnly: true } });
  });
});
