import { describe, expect, it } from 'vitest';
import { renderTable, summarize } from '../../load/report.js';
import { MetricsCollector } from '../../load/worker-metrics.js';
import { summaryInput } from '../helpers/load-summary.js';

const exposition = (started: number, complete: number, failed: number) =>
  [
    '# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.',
    '# TYPE process_start_time_seconds gauge',
    `process_start_time_seconds ${started}`,
    '# TYPE stevedore_jobs_total counter',
    `stevedore_jobs_total{queue="q",state="Complete",reason="exited"} ${complete}`,
    `stevedore_jobs_total{queue="q",state="Failed",reason="invalid"} ${failed}`,
    '',
  ].join('\n');

describe("the load test's scrape of the workers' /metrics", () => {
  it('keeps the latest scrape of each worker process and sums them, a restarted replica counting once per process', () => {
    const c = new MetricsCollector();
    c.add('worker_1', exposition(100, 3, 0));
    c.add('worker_1', exposition(100, 7, 1)); // later scrape of the same process replaces the first
    c.add('worker_2', exposition(100, 5, 0));
    c.add('worker_2', exposition(200, 2, 0)); // restarted: its counters began again at 0
    c.missed();
    expect(c.summary()).toEqual({
      jobsByState: { Complete: 14, Failed: 1 },
      processes: 3,
      scrapes: 4,
      failed: 1,
    });
  });

  it('says nothing when no worker was scraped, and puts the count beside its own in the table', () => {
    expect(new MetricsCollector().summary()).toBeNull();
    const c = new MetricsCollector();
    c.add('worker_1', exposition(100, 2, 1));
    const report = {
      ...summarize(summaryInput({ describe: '1 compose replica' })),
      jobs: 3,
      metrics: c.summary(),
    };
    expect(renderTable([report])).toContain(
      "- 1 compose replica: workers' /metrics: stevedore_jobs_total 3 (Complete 2, Failed 1) over 1 worker processes (1 scrapes, 0 missed), beside 3 results the load test read",
    );
  });
});
