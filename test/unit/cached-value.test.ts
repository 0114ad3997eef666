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
});
