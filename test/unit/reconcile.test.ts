import { describe, expect, it } from 'vitest';
import { leftoverVerdict } from '../../src/worker/recovery/reconcile.js';

const old = { ageMs: 120_000, graceMs: 30_000, ownJob: false, lockHeld: false };

describe('leftover container verdicts', () => {
  it.each([
    [{ ...old, state: null }, /unknown/],
    [{ ...old, state: 'completed' }, /finished \(completed\)/],
    [{ ...old, state: 'failed' }, /finished \(failed\)/],
    [
      { ...old, state: 'active', containerState: 'created' },
      /never started and its job is active on no worker/,
    ],
    [{ ...old, state: 'waiting', containerState: 'created' }, /waiting on no worker/],
  ])('removes %j', (input, reason) => {
    expect(leftoverVerdict(input)).toMatch(reason);
  });

  it.each([
    { ...old, state: 'active', lockHeld: true },
    { ...old, state: 'completed', ageMs: 1_000 },
    { ...old, state: null, ownJob: true },
    { ...old, state: 'active', containerState: 'running' },
    { ...old, state: 'waiting', containerState: 'exited' },
  ])('keeps %j', (input) => {
    expect(leftoverVerdict(input)).toBeNull();
  });
});
