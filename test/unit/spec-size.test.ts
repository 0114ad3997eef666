import { describe, expect, it } from 'vitest';
import { jobDataProblem, jobTextProblem, parseJobSpec } from '../../src/jobs/spec.js';
import { SPEC_LIMITS } from '../../src/jobs/spec-limits.js';
import { VALID_SPEC } from '../helpers/invalid-specs.js';

const elements = `has more than ${SPEC_LIMITS.specElements} elements (array items and object fields)`;
const strings = `has more than ${SPEC_LIMITS.specStrings} strings (keys and values)`;

/** The largest spec the field caps allow: every count of it must pass both checks. */
const largest = {
  ...VALID_SPEC,
  command: Array.from({ length: SPEC_LIMITS.commandArgs }, (_, i) => `arg-${i}`),
  env: Object.fromEntries(Array.from({ length: SPEC_LIMITS.envVars }, (_, i) => [`V${i}`, 'x'])),
  mounts: Object.fromEntries(
    Array.from({ length: SPEC_LIMITS.mounts }, (_, i) => [`/m${i}`, { hostPath: `/h${i}`, readOnly: true }]),
  ),
  labels: Object.fromEntries(Array.from({ length: SPEC_LIMITS.labels }, (_, i) => [`l${i}`, 'v'])),
};

describe('the whole-job bounds', () => {
  it('refuse millions of elements, of any kind, as invalid, on the parsed value and on the JSON text', () => {
    const millions: [string, unknown][] = [
      ['numbers', { ...VALID_SPEC, command: new Array(6_000_000).fill(0) }],
      ['strings', { ...VALID_SPEC, command: new Array(6_000_000).fill('0') }],
      ['empty arrays', { ...VALID_SPEC, labels: { a: Array.from({ length: 6_000_000 }, () => []) } }],
      ['nulls in a nested array', { ...VALID_SPEC, labels: { a: [[new Array(6_000_000).fill(null)]] } }],
    ];
    for (const [what, data] of millions) {
      expect(jobDataProblem(data), what).toBe(elements);
      expect(() => parseJobSpec(data), what).toThrow(elements);
    }
    // Within the byte limit as text: refused by its count before JSON.parse.
    const zeros = JSON.stringify(millions[0]?.[1]);
    expect(zeros.length).toBeLessThan(SPEC_LIMITS.specBytes);
    expect(jobTextProblem(zeros)).toBe(elements);
    // Building four arrays of six million takes seconds on a busy 2-core machine (seen: past
    // vitest's 5 s default while an integration run shared the cores); the check itself is fast.
  }, 60_000);

  it('count on the text what they count on the value: the first element of each container too, whitespace aside', () => {
    // 10,001 one-element arrays: 20,002 elements and 10,000 commas.
    const pairs = { ...VALID_SPEC, labels: { a: Array.from({ length: 10_001 }, () => [0]) } };
    expect(jobDataProblem(pairs)).toBe(elements);
    expect(jobTextProblem(JSON.stringify(pairs))).toBe(elements);
    expect(jobTextProblem(JSON.stringify(pairs, null, 2))).toBe(elements);
    const within = { ...VALID_SPEC, labels: { a: Array.from({ length: 9_990 }, () => [0]) } };
    expect(jobDataProblem(within)).toBeNull();
    expect(jobTextProblem(JSON.stringify(within, null, 2))).toBeNull();
    expect(jobTextProblem(' { "a" : [ ] , "b" : { } } ')).toBeNull();
  });

  it('count an object field by field', () => {
    const fields = Object.fromEntries(Array.from({ length: 30_000 }, (_, i) => [`k${i}`, i]));
    expect(jobDataProblem({ ...VALID_SPEC, labels: fields })).toBe(strings);
    expect(jobTextProblem(JSON.stringify({ ...VALID_SPEC, labels: fields }))).toBe(strings);
  });

  it('pass the largest spec the field caps allow, on the value and on its text', () => {
    expect(jobDataProblem(largest)).toBeNull();
    expect(jobTextProblem(JSON.stringify(largest))).toBeNull();
    expect(parseJobSpec(largest).command).toHaveLength(SPEC_LIMITS.commandArgs);
  });

  it('read strings in the text to their real end: escaped quotes, brackets and commas inside are text', () => {
    const tricky = { ...VALID_SPEC, command: ['sh', '-c', `echo "[{,}]" \\" ${',['.repeat(30_000)}\\\\`] };
    expect(jobTextProblem(JSON.stringify(tricky))).toBeNull();
    expect(jobDataProblem(tricky)).toBeNull();
  });

  it('say the bytes of a text over the byte limit, and the depth of one nested too deep', () => {
    const big = JSON.stringify({ ...VALID_SPEC, stdin: 'x'.repeat(SPEC_LIMITS.specBytes) });
    expect(jobTextProblem(big)).toBe(
      `is ${Buffer.byteLength(big)} bytes as JSON, more than the ${SPEC_LIMITS.specBytes} a spec may be`,
    );
    const deep = `{"labels":${'['.repeat(17)}${']'.repeat(17)}}`;
    expect(jobTextProblem(deep)).toBe('is nested deeper than 16 levels');
    expect(jobDataProblem(JSON.parse(deep))).toBe('is nested deeper than 16 levels');
  });

  it('leave text that is not JSON to the parser', () => {
    expect(jobTextProblem('{"image": "unterminated')).toBeNull();
  });
});
