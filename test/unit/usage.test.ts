import { describe, expect, it } from 'vitest';
import { usageFromStats } from '../../src/executors/docker/usage.js';
import { UsageTracker } from '../../src/worker/run/usage-tracker.js';

describe('usage', () => {
  it('reads cumulative CPU, peak memory and block IO from a stats answer', () => {
    expect(
      usageFromStats({
        read: '2026-11-27T20:00:00Z',
        cpu_stats: { cpu_usage: { total_usage: 1_500_000_000 } },
        memory_stats: { usage: 10, max_usage: 20, limit: 100 },
        blkio_stats: {
          io_service_bytes_recursive: [
            { op: 'Read', value: 4096 },
            { op: 'Write', value: 8192 },
            { op: 'Total', value: 12288 },
          ],
        },
      }),
    ).toEqual({
      cpuSeconds: 1.5,
      memoryBytes: 10,
      peakMemoryBytes: 20,
      blockIoBytes: 12288,
      memoryLimitBytes: 100,
    });
  });

  it('treats the zero-time answer of a stopped container as no sample', () => {
    expect(usageFromStats({ read: '0001-01-01T00:00:00Z' })).toBeNull();
  });

  it('keeps maxima across samples and warns once past 90% of the limit', () => {
    const t = new UsageTracker();
    expect(t.usage).toBeNull();
    const base = { blockIoBytes: null, memoryLimitBytes: 100 };
    expect(t.add({ ...base, cpuSeconds: 1, memoryBytes: 50, peakMemoryBytes: 50 })).toBeNull();
    expect(t.add({ ...base, cpuSeconds: 2, memoryBytes: 95, peakMemoryBytes: 95 })).toMatch(
      /^memory at 95% of its limit/,
    );
    expect(t.add({ ...base, cpuSeconds: 3, memoryBytes: 99, peakMemoryBytes: 99 })).toBeNull();
    expect(t.add({ ...base, cpuSeconds: null, memoryBytes: 10, peakMemoryBytes: 10 })).toBeNull();
    expect(t.usage).toEqual({ cpuSeconds: 3, peakMemoryBytes: 99, blockIoBytes: null });
  });
});

describe('final usage', () => {
  it('fills a run with no sample, and its CPU time wins over a late sample while the higher peak stays', () => {
    const none = new UsageTracker();
    none.addFinal({ cpuSeconds: 0.01, peakMemoryBytes: 300_000, blockIoBytes: null, missing: null });
    expect(none.usage).toEqual({ cpuSeconds: 0.01, peakMemoryBytes: 300_000, blockIoBytes: null });

    const sampled = new UsageTracker();
    sampled.add({
      cpuSeconds: 1,
      memoryBytes: 10,
      peakMemoryBytes: 900,
      blockIoBytes: 7,
      memoryLimitBytes: null,
    });
    sampled.addFinal({ cpuSeconds: 1.5, peakMemoryBytes: 800, blockIoBytes: null, missing: 'x' });
    expect(sampled.usage).toEqual({ cpuSeconds: 1.5, peakMemoryBytes: 900, blockIoBytes: 7 });
  });
});
