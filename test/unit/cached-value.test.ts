import { describe, expect, it } from 'vitest';
import { CachedValue } from '../../src/server/cached.js';

describe('CachedValue', () => {
  it('reads at most once per ttl, and again after it', async () => {
    let now = 0;
    let reads = 0;
    const cached = new CachedValue(
      5_000,
      async () => ++reads,
      () => now,
    );
    expect(await cached.get()).toBe(1);
    now = 4_999;
    expect(await Promise.all([cached.get(), cached.get()])).toEqual([1, 1]);
    now = 5_000;
    expect(await cached.get()).toBe(2);
    expect(reads).toBe(2);
  });

  it('does not keep a failed read', async () => {
    let fail = true;
    const cached = new CachedValue(
      5_000,
      async () => {
        if (fail) throw new Error('redis down');
        return 'counts';
      },
      () => 0,
    );
    await expect(cached.get()).rejects.toThrow('redis down');
    fail = false;
    expect(await cached.get()).toBe('counts');
  });

  it('keeps one read in flight however long it takes, and counts the age from when it settled', async () => {
    let now = 0;
    let reads = 0;
    let finish: (value: number) => void = () => undefined;
    const cached = new CachedValue(
      1_000,
      () =>
        new Promise<number>((resolve) => {
          reads += 1;
          finish = resolve;
        }),
      () => now,
    );
    const first = cached.get();
    now = 5_000; // far past the ttl, and the read still under way
    const second = cached.get();
    expect(reads).toBe(1);
    finish(7);
    expect(await Promise.all([first, second])).toEqual([7, 7]);
    now = 5_999;
    expect(await cached.get()).toBe(7);
    expect(reads).toBe(1);
    now = 6_000;
    void cached.get();
    expect(reads).toBe(2);
  });
});
