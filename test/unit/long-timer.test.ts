import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MAX_TIMEOUT_MS, setLongTimeout } from '../../src/worker/run/long-timer.js';

const DAY_MS = 24 * 3600 * 1000;

describe('setLongTimeout', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a 30-day limit fires neither after 1 ms nor after 25 days, and fires at 30 days', () => {
    const fired = vi.fn();
    setLongTimeout(fired, 30 * DAY_MS);
    vi.advanceTimersByTime(1);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(25 * DAY_MS - 1);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(5 * DAY_MS - 1);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledOnce();
    vi.advanceTimersByTime(60 * DAY_MS);
    expect(fired).toHaveBeenCalledOnce();
  });

  it('fires on time right at and just past the largest single timeout', () => {
    for (const delay of [MAX_TIMEOUT_MS, MAX_TIMEOUT_MS + 1, 2 * MAX_TIMEOUT_MS + 5]) {
      const fired = vi.fn();
      setLongTimeout(fired, delay);
      vi.advanceTimersByTime(delay - 1);
      expect(fired, `delay ${delay}`).not.toHaveBeenCalled();
      vi.advanceTimersByTime(1);
      expect(fired, `delay ${delay}`).toHaveBeenCalledOnce();
    }
  });

  it('a short delay fires once, as setTimeout would', () => {
    const fired = vi.fn();
    setLongTimeout(fired, 50);
    vi.advanceTimersByTime(49);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fired).toHaveBeenCalledOnce();
  });

  it('clear() stops it in any link of the chain', () => {
    const early = vi.fn();
    setLongTimeout(early, 30 * DAY_MS).clear();
    const late = vi.fn();
    const timer = setLongTimeout(late, 30 * DAY_MS);
    vi.advanceTimersByTime(26 * DAY_MS);
    timer.clear();
    vi.advanceTimersByTime(10 * DAY_MS);
    expect(early).not.toHaveBeenCalled();
    expect(late).not.toHaveBeenCalled();
  });
});
