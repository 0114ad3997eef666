import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { IDLE_GC_DELAY_MS, IdleCollector } from '../../src/worker/idle-gc.js';

describe('IdleCollector', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('collects once the worker has stayed idle for the delay, not before', () => {
    const collect = vi.fn();
    const idle = new IdleCollector(() => false, collect);
    idle.runEnded();
    vi.advanceTimersByTime(IDLE_GC_DELAY_MS - 1);
    expect(collect).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(collect).toHaveBeenCalledTimes(1);
  });

  it('does not collect while a run is going, nor when one started within the delay', () => {
    let running = 1;
    const collect = vi.fn();
    const idle = new IdleCollector(() => running > 0, collect);
    idle.runEnded(); // another run still going
    running = 0;
    idle.runEnded();
    running = 1; // a new job came in
    vi.advanceTimersByTime(IDLE_GC_DELAY_MS * 2);
    expect(collect).not.toHaveBeenCalled();
  });

  it('collects once for a burst of runs ending close together', () => {
    const collect = vi.fn();
    const idle = new IdleCollector(() => false, collect);
    for (let i = 0; i < 5; i++) {
      idle.runEnded();
      vi.advanceTimersByTime(IDLE_GC_DELAY_MS / 2);
    }
    vi.advanceTimersByTime(IDLE_GC_DELAY_MS);
    expect(collect).toHaveBeenCalledTimes(1);
  });

  it('collects at once when asked (start-up done), unless a run is going', () => {
    let running = 0;
    const collect = vi.fn();
    const idle = new IdleCollector(() => running > 0, collect);
    idle.collectNow();
    expect(collect).toHaveBeenCalledTimes(1);
    running = 1;
    idle.collectNow();
    expect(collect).toHaveBeenCalledTimes(1);
  });

  it('does nothing without an exposed gc, and nothing after stop()', () => {
    expect(() => new IdleCollector(() => false, undefined).runEnded()).not.toThrow();
    const collect = vi.fn();
    const idle = new IdleCollector(() => false, collect);
    idle.runEnded();
    idle.stop();
    vi.advanceTimersByTime(IDLE_GC_DELAY_MS * 2);
    expect(collect).not.toHaveBeenCalled();
  });
});
