import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { IDLE_GC_DELAY_MS, IdleCollector } from '../../src/worker/idle-gc.js';

describe('IdleCollector', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
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

  it('uses the gc that --expose-gc exposes when none is given', () => {
    const exposed = vi.fn();
    vi.stubGlobal('gc', exposed);
    new IdleCollector(() => false).collectNow();
    expect(exposed).toHaveBeenCalledTimes(1);
  });

  it('does nothing with no gc: null given, or none exposed', () => {
    const exposed = vi.fn();
    vi.stubGlobal('gc', exposed);
    const off = new IdleCollector(() => false, null);
    off.collectNow();
    off.runEnded();
    vi.advanceTimersByTime(IDLE_GC_DELAY_MS * 2);
    expect(exposed).not.toHaveBeenCalled();
    vi.stubGlobal('gc', undefined);
    const unexposed = new IdleCollector(() => false);
    expect(() => unexposed.collectNow()).not.toThrow();
    unexposed.runEnded();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('does nothing after stop()', () => {
    const collect = vi.fn();
    const idle = new IdleCollector(() => false, collect);
    idle.runEnded();
    idle.stop();
    vi.advanceTimersByTime(IDLE_GC_DELAY_MS * 2);
    expect(collect).not.toHaveBeenCalled();
  });
});
