import { describe, expect, it } from 'vitest';
import { coerceError, InvalidSpecError } from '../../src/jobs/errors.js';
import { type JobSpecInput, parseJobSpec, pullPolicyOf } from '../../src/jobs/spec.js';

const spec = (fields: Partial<JobSpecInput>) =>
  parseJobSpec({ image: 'busybox', command: ['true'], ...fields });

describe('imagePullPolicy in a job spec', () => {
  it.each(['if-not-present', 'always', 'never'] as const)('takes %s and keeps it', (policy) => {
    expect(spec({ image: 'busybox:1.36', imagePullPolicy: policy }).imagePullPolicy).toBe(policy);
  });

  it('is absent when not given (the default is decided by the reference, at run time)', () => {
    expect(spec({}).imagePullPolicy).toBeUndefined();
  });

  it.each<[string, unknown]>([
    ['a word Kubernetes spells differently', 'IfNotPresent'],
    ['upper case', 'Always'],
    ['an empty string', ''],
    ['a boolean', true],
  ])('rejects %s, naming the field and the allowed values', (_what, value) => {
    let error: unknown;
    try {
      spec({ imagePullPolicy: value as 'always' });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(InvalidSpecError);
    const issues = (error as InvalidSpecError).issues;
    expect(issues.map((issue) => issue.path)).toEqual(['imagePullPolicy']);
    expect(issues[0]?.message).toMatch(/"if-not-present", "always", "never"/);
    expect(coerceError(error).message).toContain('imagePullPolicy: must be one of');
  });
});

describe('pullPolicyOf: the policy a run uses', () => {
  it.each([
    ['busybox', 'always'],
    ['busybox:latest', 'always'],
    ['127.0.0.1:5000/team/app', 'always'],
    ['busybox:1.36', 'if-not-present'],
    [`busybox@sha256:${'0'.repeat(64)}`, 'if-not-present'],
  ])('with no policy given, %s → %s (Kubernetes defaults)', (image, policy) => {
    expect(pullPolicyOf(spec({ image }))).toBe(policy);
  });

  it("the spec's own policy wins over the default, both ways", () => {
    expect(pullPolicyOf(spec({ image: 'busybox:latest', imagePullPolicy: 'never' }))).toBe('never');
    expect(pullPolicyOf(spec({ image: 'busybox:1.36', imagePullPolicy: 'always' }))).toBe('always');
  });

  it('an imageTarball job loads when absent, even for :latest or no tag', () => {
    expect(pullPolicyOf(spec({ image: 'app:latest', imageTarball: '/images/app.tar' }))).toBe(
      'if-not-present',
    );
    expect(pullPolicyOf(spec({ image: 'app', imageTarball: '/images/app.tar' }))).toBe('if-not-present');
    expect(
      pullPolicyOf(spec({ image: 'app', imageTarball: '/images/app.tar', imagePullPolicy: 'never' })),
    ).toBe('never');
  });

  it('a malformed reference passes validation and gets if-not-present: it fails when looked for, as `image`', () => {
    const parsed = spec({ image: 'Not/A//Ref:' });
    expect(pullPolicyOf(parsed)).toBe('if-not-present');
  });
});
