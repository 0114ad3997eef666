import { describe, expect, it } from 'vitest';
import { readinessOf } from '../../src/server/readiness.js';

describe('readiness', () => {
  it('is ready only when Redis, the engine and the worker are all fine', () => {
    expect(readinessOf({ redis: null, engine: null, jobs: null })).toEqual({ ready: true, text: 'ready' });
  });

  it('names everything that is down, with why', () => {
    expect(readinessOf({ redis: 'connection is reconnecting', engine: null, jobs: null })).toEqual({
      ready: false,
      text: 'not ready: redis: connection is reconnecting',
    });
    expect(readinessOf({ redis: null, engine: 'connect ENOENT', jobs: 'worker is closing' }).text).toBe(
      'not ready: engine: connect ENOENT; worker: worker is closing',
    );
  });

  it('is not ready before a worker is attached', () => {
    expect(readinessOf(null)).toEqual({ ready: false, text: 'not ready: worker: starting' });
  });
});
