import { describe, expect, it } from 'vitest';
import { InvalidSpecError } from '../../src/jobs/errors.js';
import { parseJobSpec } from '../../src/jobs/spec.js';
import { timeoutField, timeoutsOf } from '../../src/jobs/timeouts.js';
import { checkPolicy, deniedMessage } from '../../src/policy/check.js';
import { PolicyError, parsePolicy } from '../../src/policy/policy.js';

const BASE = { image: 'busybox:1', command: ['true'] };
const NO_FACTS = { paths: new Map(), neverAllowed: [] };

const problems = (input: unknown): string => {
  try {
    parseJobSpec(input);
  } catch (error) {
    if (error instanceof InvalidSpecError) return error.message;
    throw error;
  }
  throw new Error('expected the spec to be refused');
};

const policyProblems = (input: unknown): string => {
  try {
    parsePolicy(input, 'p.yaml');
  } catch (error) {
    if (error instanceof PolicyError) return error.message;
    throw error;
  }
  throw new Error('expected the policy to be refused');
};

const checked = (policy: unknown, spec: Record<string, unknown>) =>
  checkPolicy(parseJobSpec({ ...BASE, ...spec }), parsePolicy(policy, 'p.yaml'), NO_FACTS);

describe('the spec’s timeouts', () => {
  it('takes each timeout in seconds, and refuses an unknown one, zero, or over 30 days, naming the field', () => {
    const spec = parseJobSpec({
      ...BASE,
      timeouts: {
        queueSeconds: 60,
        imageSeconds: 30,
        startSeconds: 5,
        runSeconds: 600,
        noOutputSeconds: 0.5,
      },
    });
    expect(spec.timeouts).toEqual({
      queueSeconds: 60,
      imageSeconds: 30,
      startSeconds: 5,
      runSeconds: 600,
      noOutputSeconds: 0.5,
    });
    const message = problems({
      ...BASE,
      timeouts: { queueSeconds: 0, noOutput: 5, imageSeconds: 31 * 24 * 3600, startSeconds: '5' },
    });
    expect(message).toMatch(/timeouts\.queueSeconds: must be greater than 0/);
    expect(message).toMatch(/timeouts: unknown field noOutput/);
    expect(message).toMatch(/timeouts\.imageSeconds: must be at most 2592000 \(30 days\)/);
    expect(message).toMatch(/timeouts\.startSeconds: must be a number, not string/);
  });

  it('maxRunTimeSeconds stays as the old name of runSeconds: either, or both when equal', () => {
    expect(timeoutsOf(parseJobSpec({ ...BASE, maxRunTimeSeconds: 7 }))).toEqual({ runSeconds: 7 });
    expect(timeoutsOf(parseJobSpec({ ...BASE, timeouts: { runSeconds: 7 } }))).toEqual({ runSeconds: 7 });
    expect(timeoutsOf(parseJobSpec({ ...BASE, maxRunTimeSeconds: 7, timeouts: { runSeconds: 7 } }))).toEqual({
      runSeconds: 7,
    });
  });

  it('refuses the two names with different values, naming both fields', () => {
    const message = problems({ ...BASE, maxRunTimeSeconds: 7, timeouts: { runSeconds: 5 } });
    expect(message).toMatch(
      /timeouts\.runSeconds: timeouts\.runSeconds \(5\) and maxRunTimeSeconds \(7\) disagree: give one of them/,
    );
  });
});

describe('the policy’s timeouts', () => {
  it('by default caps and defaults only the run time (24 h): the others are the job’s to set', () => {
    const { spec, denials } = checked(undefined, {
      timeouts: { queueSeconds: 10 * 24 * 3600, noOutputSeconds: 5 },
    });
    expect(denials).toEqual([]);
    expect(spec.timeouts).toEqual({ queueSeconds: 864_000, noOutputSeconds: 5, runSeconds: 86_400 });
    expect(spec.maxRunTimeSeconds).toBe(86_400);
  });

  it('refuses a timeout over its cap as invalid, naming the field and the cap', () => {
    const policy = { timeouts: { imageSeconds: { max: 60 }, runSeconds: { max: 100 } } };
    const { denials } = checked(policy, { timeouts: { imageSeconds: 61, runSeconds: 101 } });
    expect(deniedMessage(denials)).toBe(
      "denied by policy: timeouts.imageSeconds 61 is over the policy's cap 60 (timeouts.imageSeconds.max); timeouts.runSeconds 101 is over the policy's cap 100 (timeouts.runSeconds.max)",
    );
    // A job that used the old name hears it by that name, and its run names it too.
    const old = checked(undefined, { maxRunTimeSeconds: 50 }).spec;
    expect([timeoutsOf(old), timeoutField('runSeconds', old)]).toEqual([
      { runSeconds: 50 },
      'maxRunTimeSeconds',
    ]);
    const fromPolicy = checked(undefined, {}).spec;
    expect([timeoutsOf(fromPolicy), timeoutField('runSeconds', fromPolicy)]).toEqual([
      { runSeconds: 86_400 },
      'timeouts.runSeconds',
    ]);
    expect(deniedMessage(checked(policy, { maxRunTimeSeconds: 101 }).denials)).toBe(
      "denied by policy: maxRunTimeSeconds 101 is over the policy's cap 100 (timeouts.runSeconds.max)",
    );
  });

  it('gives a job that names none the policy’s default only where the policy says so', () => {
    const policy = { timeouts: { noOutputSeconds: { max: 600, default: 300 }, queueSeconds: { max: 60 } } };
    const { spec } = checked(policy, {});
    expect(spec.timeouts).toEqual({ noOutputSeconds: 300, runSeconds: 86_400 });
    expect(checked(policy, { timeouts: { noOutputSeconds: 10 } }).spec.timeouts?.noOutputSeconds).toBe(10);
  });

  it('the run timeout’s one bound stands for both, as maxRunTimeSeconds did', () => {
    expect(parsePolicy({ maxRunTimeSeconds: 60 }, 'p').timeouts.runSeconds).toEqual({ max: 60, default: 60 });
    expect(parsePolicy({ timeouts: { runSeconds: { max: 60 } } }, 'p').timeouts.runSeconds).toEqual({
      max: 60,
      default: 60,
    });
    expect(
      parsePolicy({ timeouts: { runSeconds: { max: 600, default: 60 } } }, 'p').timeouts.runSeconds,
    ).toEqual({
      max: 600,
      default: 60,
    });
  });

  it('refuses a default over its max, an unknown key, and both names of the run timeout', () => {
    expect(policyProblems({ timeouts: { startSeconds: { max: 5, default: 10 } } })).toMatch(
      /timeouts\.startSeconds\.default: is above timeouts\.startSeconds\.max \(5\)/,
    );
    expect(policyProblems({ timeouts: { startSeconds: { cap: 5 } } })).toMatch(
      /timeouts\.startSeconds: unknown key cap/,
    );
    expect(policyProblems({ maxRunTimeSeconds: 60, timeouts: { runSeconds: { max: 60 } } })).toMatch(
      /maxRunTimeSeconds: is the old name of timeouts\.runSeconds, and both are given/,
    );
  });
});
