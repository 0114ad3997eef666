import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { WorkerEvents } from '../worker/observer.js';
import type { WorkerHandle, WorkerProbe } from '../worker/worker.js';
import { CachedValue } from './cached.js';

/** Buckets for job phases: from a cached image's milliseconds to hour-long runs. */
const PHASE_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14_400];
/** Buckets for image pulls: a local registry's fraction of a second to a large image's half hour (the default pull timeout). */
const PULL_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];
/** At most one Redis read for the queue depth per this long (a usual scrape interval is 15 s or more). */
export const QUEUE_COUNTS_TTL_MS = 5_000;
/**
 * One probe of Redis and the engine serves every gauge of a scrape (prom-client collects them in
 * parallel) and every /readyz request meanwhile: /readyz is unauthenticated, and a probe costs a
 * Redis PING and an engine request (on Apptainer a whole `apptainer --version`).
 */
export const PROBE_TTL_MS = 1_000;

/** What the gauges read from the worker when scraped. */
export type MetricsSource = Pick<
  WorkerHandle,
  'running' | 'capacity' | 'probe' | 'queueCounts' | 'whyNoJobs'
>;

/**
 * The worker's Prometheus metrics in a registry of its own (not prom-client's global one), fed
 * by the worker's events; the gauges ask the worker at scrape time once `attach()` gave it.
 */
export class WorkerMetrics {
  readonly registry = new Registry();
  private source: MetricsSource | undefined;
  private readonly counts: CachedValue<Record<string, number>>;
  private readonly probes: CachedValue<WorkerProbe>;

  constructor(events: WorkerEvents, options: { now?: () => number } = {}) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const jobs = new Counter({
      name: 'stevedore_jobs_total',
      help: 'Attempts that ended with a result, by state and reason',
      labelNames: ['queue', 'state', 'reason'] as const,
      registers,
    });
    const phases = new Histogram({
      name: 'stevedore_job_phase_seconds',
      help: 'Time jobs spent in each phase of the run state machine',
      labelNames: ['phase'] as const,
      buckets: PHASE_BUCKETS,
      registers,
    });
    const pulls = new Counter({
      name: 'stevedore_image_pulls_total',
      help: 'Image pulls from a registry by result: pulled, shared (waited on another job pull), failed',
      labelNames: ['result'] as const,
      registers,
    });
    const pullSeconds = new Histogram({
      name: 'stevedore_image_pull_seconds',
      help: 'Duration of image pulls from a registry',
      buckets: PULL_BUCKETS,
      registers,
    });
    const output = new Counter({
      name: 'stevedore_output_bytes_total',
      help: 'Bytes job containers wrote, by stream',
      labelNames: ['stream'] as const,
      registers,
    });
    const adoptions = new Counter({
      name: 'stevedore_adoptions_total',
      help: 'Containers left by a crashed or detached worker that this worker took over',
      registers,
    });
    const reconciled = new Counter({
      name: 'stevedore_containers_reconciled_total',
      help: 'Leftover containers that reconciling acted on, by action',
      labelNames: ['action'] as const,
      registers,
    });
    events.on('job-finished', (e) => jobs.inc({ queue: e.queue, state: e.state, reason: e.reason }));
    events.on('phase-ended', (e) => phases.observe({ phase: e.phase }, e.seconds));
    events.on('pull-done', (e) => {
      pulls.inc({ result: e.result });
      pullSeconds.observe(e.seconds);
    });
    events.on('output-bytes', (e) => output.inc({ stream: e.stream }, e.bytes));
    events.on('adopted', () => adoptions.inc());
    events.on('reconciled', (e) => reconciled.inc({ action: e.action }, e.count));

    this.counts = new CachedValue(QUEUE_COUNTS_TTL_MS, () => this.need().queueCounts(), options.now);
    this.probes = new CachedValue(PROBE_TTL_MS, () => this.need().probe(), options.now);
    const self = this;
    new Gauge({
      name: 'stevedore_jobs_running',
      help: 'Jobs this worker runs now',
      registers,
      collect() {
        if (self.source) this.set(self.source.running());
      },
    });
    new Gauge({
      name: 'stevedore_worker_capacity',
      help: 'Jobs this worker runs at once (STEVEDORE_CONCURRENCY)',
      registers,
      collect() {
        if (self.source) this.set(self.source.capacity);
      },
    });
    const up = (name: string, help: string, of: (probe: WorkerProbe) => string | null): void => {
      new Gauge({
        name,
        help,
        registers,
        async collect() {
          if (self.source) this.set(of(await self.probes.get()) === null ? 1 : 0);
        },
      });
    };
    up('stevedore_engine_up', '1 while the container engine answers', (p) => p.engine);
    up('stevedore_redis_up', '1 while Redis answers', (p) => p.redis);
    new Gauge({
      name: 'stevedore_queue_jobs',
      help: `Jobs in the queue by state (read at most once per ${QUEUE_COUNTS_TTL_MS / 1000} s)`,
      labelNames: ['state'] as const,
      registers,
      async collect() {
        if (!self.source) return;
        // Redis away is stevedore_redis_up 0, not a failed scrape: the last depths stay.
        if ((await self.probes.get()).redis !== null) return;
        const counts = await self.counts.get().catch(() => null);
        for (const [state, n] of Object.entries(counts ?? {})) this.set({ state }, n);
      },
    });
  }

  /**
   * The attached worker's probe, at most one per PROBE_TTL_MS and one at a time, shared by the
   * gauges and /readyz. Its `jobs` may be that old: ask `whyNoJobs()` for now.
   */
  probe(): Promise<WorkerProbe> {
    return this.probes.get();
  }

  /** The worker whose gauges are read; before it, only the counters and process metrics show. */
  attach(source: MetricsSource): void {
    this.source = source;
  }

  private need(): MetricsSource {
    if (!this.source) throw new Error('metrics: no worker attached yet');
    return this.source;
  }
}
