import { describe, expect, it } from 'vitest';
import { type Placement, placeOf } from '../../src/jobs/status.js';

const nowhere: Placement = {
  completed: false,
  failed: false,
  delayedScore: null,
  prioritizedRank: null,
  activeAt: null,
  waitAt: null,
  pausedAt: null,
  waitingChildren: false,
  waitLength: 0,
  pausedLength: 0,
};

describe('placeOf (a job among BullMQ 6 keys)', () => {
  it('counts the jobs to the right of a waiting job: workers take from the right of the list', () => {
    // LPUSHed in the order a, b, c: the list is [c, b, a] and a goes first.
    expect(placeOf({ ...nowhere, waitLength: 3, waitAt: 2 })).toEqual({ state: 'waiting', ahead: 0 });
    expect(placeOf({ ...nowhere, waitLength: 3, waitAt: 0 })).toEqual({ state: 'waiting', ahead: 2 });
  });

  it('puts a prioritized job behind the whole wait list, then by its rank', () => {
    expect(placeOf({ ...nowhere, waitLength: 4, prioritizedRank: 0 })).toEqual({
      state: 'prioritized',
      ahead: 4,
    });
    expect(placeOf({ ...nowhere, waitLength: 0, prioritizedRank: 7 })).toEqual({
      state: 'prioritized',
      ahead: 7,
    });
  });

  it('reads a delayed job ready time from its score (ready ms × 0x1000 + a counter)', () => {
    const readyAt = Date.parse('2026-12-02T12:00:00.000Z');
    expect(placeOf({ ...nowhere, delayedScore: readyAt * 0x1000 + 17 })).toEqual({
      state: 'delayed',
      readyAt,
    });
  });

  it('counts the old paused list like the wait list', () => {
    expect(placeOf({ ...nowhere, pausedLength: 5, pausedAt: 1 })).toEqual({ state: 'waiting', ahead: 3 });
  });

  it('checks in the order of BullMQ getState: finished first, then delayed, prioritized, active, waiting', () => {
    const everywhere: Placement = {
      ...nowhere,
      completed: true,
      failed: true,
      delayedScore: 0,
      prioritizedRank: 0,
      activeAt: 0,
      waitAt: 0,
      waitingChildren: true,
    };
    expect(placeOf(everywhere).state).toBe('completed');
    expect(placeOf({ ...everywhere, completed: false }).state).toBe('failed');
    expect(placeOf({ ...everywhere, completed: false, failed: false }).state).toBe('delayed');
    expect(placeOf({ ...nowhere, activeAt: 0, waitAt: 0 })).toEqual({ state: 'active' });
    expect(placeOf({ ...nowhere, waitingChildren: true })).toEqual({ state: 'waiting-children' });
    expect(placeOf(nowhere)).toEqual({ state: 'unknown' });
  });
});
