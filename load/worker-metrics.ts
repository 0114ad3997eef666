import { parseProm, type Sample } from '../test/helpers/prom-text.js';

/** What the workers' own /metrics said about the run, summed over every worker process seen. */
export interface ScrapedMetrics {
  /** stevedore_jobs_total by the result's state (Complete, Cancelled, Failed), all reasons. */
  jobsByState: Record<string, number>;
  /** Worker processes scraped at least once (a restarted replica is a new process). */
  processes: number;
  scrapes: number;
  /** Scrapes that failed (a replica being killed or restarted at that moment). */
  failed: number;
}

/**
 * Keeps each worker process's latest scrape: counters start at 0 in a new process, so a replica
 * that was killed or restarted counts once per process (told apart by process_start_time_seconds).
 * A killed process's counts are those of its last scrape (at most one interval old).
 */
export class MetricsCollector {
  private readonly latest = new Map<string, Sample[]>();
  private scrapes = 0;
  private failed = 0;

  add(replica: string, text: string): void {
    const samples = parseProm(text);
    const started = samples.find((s) => s.name === 'process_start_time_seconds')?.value ?? 0;
    this.latest.set(`${replica}@${started}`, samples);
    this.scrapes += 1;
  }

  missed(): void {
    this.failed += 1;
  }

  summary(): ScrapedMetrics | null {
    if (this.latest.size === 0) return null;
    const jobsByState: Record<string, number> = {};
    for (const samples of this.latest.values()) {
      for (const s of samples) {
        if (s.name !== 'stevedore_jobs_total') continue;
        const state = s.labels.state ?? '?';
        jobsByState[state] = (jobsByState[state] ?? 0) + s.value;
      }
    }
    return { jobsByState, processes: this.latest.size, scrapes: this.scrapes, failed: this.failed };
  }
}
