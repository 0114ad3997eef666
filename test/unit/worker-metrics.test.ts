import { describe, expect, it } from 'vitest';
import { WorkerMetrics } from '../../src/server/metrics.js';
import { WorkerEvents } from '../../src/worker/observer.js';
import type { WorkerProbe } from '../../src/worker/worker.js';
import { parseProm, sampleOf } from '../helpers/prom-text.js';

function world(probe: WorkerProbe = { redis: null, engine: null, jobs: null }) {
  const events = new WorkerEvents();
  const metrics = new WorkerMetrics(events);
  let countReads = 0;
  metrics.attach({
    running: () => 1,
    capacity: 4,
    probe: async () => probe,
    whyNoJobs: () => null,
    queueCounts: async () => {
      countReads += 1;
      return { waiting: 3, active: 1 };
    },
  });
  const scrape = async () => parseProm(await metrics.registry.metrics());
  return { events, metrics, scrape, reads: () => countReads };
}

describe('worker metrics', () => {
  it('counts what the worker events tell', async () => {
    const { events, scrape } = world();
    events.emit('job-finished', { jobId: 'a', queue: 'q', state: 'Complete', reason: 'exited' });
    events.emit('job-finished', { jobId: 'b', queue: 'q', state: 'Complete', reason: 'exited' });
    events.emit('job-finished', { jobId: 'c', queue: 'q', state: 'Failed', reason: 'invalid' });
    events.emit('phase-ended', { jobId: 'a', phase: 'running', seconds: 0.2 });
    events.emit('phase-ended', { jobId: 'b', phase: 'running', seconds: 3 });
    events.emit('pull-done', { jobId: 'a', result: 'pulled', seconds: 1.5 });
    events.emit('output-bytes', { jobId: 'a', stream: 'stdout', bytes: 10 });
    events.emit('output-bytes', { jobId: 'b', stream: 'stdout', bytes: 5 });
    events.emit('adopted', { jobId: 'a', containerId: 'c1' });
    events.emit('reconciled', { action: 'removed', count: 2 });
    const s = await scrape();
    expect(sampleOf(s, 'stevedore_jobs_total', { queue: 'q', state: 'Complete', reason: 'exited' })).toBe(2);
    expect(sampleOf(s, 'stevedore_jobs_total', { state: 'Failed', reason: 'invalid' })).toBe(1);
    expect(sampleOf(s, 'stevedore_job_phase_seconds_count', { phase: 'running' })).toBe(2);
    expect(sampleOf(s, 'stevedore_job_phase_seconds_sum', { phase: 'running' })).toBeCloseTo(3.2);
    expect(sampleOf(s, 'stevedore_job_phase_seconds_bucket', { phase: 'running', le: '1' })).toBe(1);
    expect(sampleOf(s, 'stevedore_image_pulls_total', { result: 'pulled' })).toBe(1);
    expect(sampleOf(s, 'stevedore_image_pull_seconds_count')).toBe(1);
    expect(sampleOf(s, 'stevedore_output_bytes_total', { stream: 'stdout' })).toBe(15);
    expect(sampleOf(s, 'stevedore_adoptions_total')).toBe(1);
    expect(sampleOf(s, 'stevedore_containers_reconciled_total', { action: 'removed' })).toBe(2);
    expect(sampleOf(s, 'stevedore_jobs_running')).toBe(1);
    expect(sampleOf(s, 'stevedore_worker_capacity')).toBe(4);
    expect(sampleOf(s, 'stevedore_engine_up')).toBe(1);
    expect(sampleOf(s, 'stevedore_redis_up')).toBe(1);
    expect(sampleOf(s, 'stevedore_queue_jobs', { state: 'waiting' })).toBe(3);
    expect(sampleOf(s, 'process_cpu_seconds_total')).toBeGreaterThan(0);
  });

  it('reads the queue depth at most once per cache interval', async () => {
    const { scrape, reads } = world();
    await scrape();
    await scrape();
    expect(reads()).toBe(1);
  });

  it('says Redis is down without failing the scrape, and keeps the queue unread', async () => {
    const { scrape, reads } = world({ redis: 'connection is reconnecting', engine: null, jobs: null });
    const s = await scrape();
    expect(sampleOf(s, 'stevedore_redis_up')).toBe(0);
    expect(sampleOf(s, 'stevedore_engine_up')).toBe(1);
    expect(reads()).toBe(0);
  });

  it('keeps a registry per worker', async () => {
    const a = world();
    const b = world();
    a.events.emit('adopted', { jobId: 'a', containerId: 'c1' });
    expect(sampleOf(await b.scrape(), 'stevedore_adoptions_total')).toBe(0);
  });
});
