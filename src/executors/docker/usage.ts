import type Dockerode from 'dockerode';
import type { UsageSample } from '../executor.js';

interface BlkioEntry {
  op: string;
  value: number;
}

/** The parts of the engine's stats answer we read (API 1.41, cgroup v1 and v2). */
interface StatsBody {
  read?: string;
  cpu_stats?: { cpu_usage?: { total_usage?: number } };
  memory_stats?: { usage?: number; max_usage?: number; limit?: number };
  blkio_stats?: { io_service_bytes_recursive?: BlkioEntry[] | null };
}

/** A stats answer for a container that is not running carries the zero time. */
const NOT_RUNNING_READ = '0001-01-01T00:00:00Z';

/** Turns one stats answer into a usage sample; null when the container was not running. */
export function usageFromStats(stats: StatsBody): UsageSample | null {
  if (!stats.read || stats.read === NOT_RUNNING_READ) return null;
  const memory = stats.memory_stats ?? {};
  const io = stats.blkio_stats?.io_service_bytes_recursive ?? [];
  const ioBytes = io.filter((e) => /^(read|write)$/i.test(e.op)).reduce((n, e) => n + e.value, 0);
  const total = stats.cpu_stats?.cpu_usage?.total_usage;
  return {
    cpuSeconds: total === undefined ? null : total / 1e9,
    memoryBytes: memory.usage ?? null,
    // max_usage exists only on cgroup v1 (docs/pitfalls.md, "Stats"); elsewhere the sampler
    // keeps the maximum.
    peakMemoryBytes: memory.max_usage ?? memory.usage ?? null,
    blockIoBytes: io.length > 0 ? ioBytes : null,
    memoryLimitBytes: memory.limit ?? null,
  };
}

/**
 * One-shot stats: the cumulative counters without the engine's one-second wait for a second
 * CPU sample (we need totals, not a percentage).
 */
export async function dockerUsage(container: Dockerode.Container): Promise<UsageSample | null> {
  const stats: StatsBody = await container.stats({ stream: false, 'one-shot': true });
  return usageFromStats(stats);
}
