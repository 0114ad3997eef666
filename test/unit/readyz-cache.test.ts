import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type HttpEndpoint, startHttpEndpoint } from '../../src/server/http.js';
import { PROBE_TTL_MS, WorkerMetrics } from '../../src/server/metrics.js';
import { WorkerEvents } from '../../src/worker/observer.js';
import type { WorkerProbe } from '../../src/worker/worker.js';

// /readyz over a real loopback HTTP server: a flood of requests is one probe, however slow.
let endpoint: HttpEndpoint | undefined;
afterEach(async () => {
  await endpoint?.close();
  endpoint = undefined;
});

async function world() {
  let now = 0;
  let probes = 0;
  let whyNoJobs: string | null = null;
  const gates: (() => void)[] = [];
  const metrics = new WorkerMetrics(new WorkerEvents(), { now: () => now });
  endpoint = await startHttpEndpoint({
    listen: { host: '127.0.0.1', port: 0 },
    metrics,
    logger: pino({ level: 'silent' }),
  });
  endpoint.attach({
    running: () => 0,
    capacity: 1,
    // A probe that answers only when let go, like an engine taking its time.
    probe: () =>
      new Promise<WorkerProbe>((resolve) => {
        probes += 1;
        gates.push(() => resolve({ redis: null, engine: null, jobs: null }));
      }),
    whyNoJobs: () => whyNoJobs,
    queueCounts: async () => ({}),
  });
  const url = `http://127.0.0.1:${endpoint.address.port}/readyz`;
  const get = async () => {
    const res = await fetch(url);
    return { status: res.status, text: await res.text() };
  };
  return {
    get,
    probes: () => probes,
    /** Lets the probe under way answer, once one is (a request takes a moment to arrive). */
    release: async () => {
      while (gates.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      for (const open of gates.splice(0)) open();
    },
    advance: (ms: number) => {
      now += ms;
    },
    setWhyNoJobs: (why: string | null) => {
      whyNoJobs = why;
    },
  };
}

describe('/readyz', () => {
  it('answers 100 concurrent requests with one probe, and probes again only after the cache age', async () => {
    const w = await world();
    const answers = Array.from({ length: 100 }, () => w.get());
    // Every request is in before the probe answers: they all share the one in flight.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(w.probes()).toBe(1);
    await w.release();
    const all = await Promise.all(answers);
    expect(all.every((a) => a.status === 200 && a.text === 'ready\n')).toBe(true);
    expect(w.probes()).toBe(1);

    w.advance(PROBE_TTL_MS - 1);
    expect(await w.get()).toEqual({ status: 200, text: 'ready\n' });
    expect(w.probes()).toBe(1);

    w.advance(1);
    const again = Promise.all(Array.from({ length: 20 }, () => w.get()));
    await new Promise((resolve) => setTimeout(resolve, 100));
    await w.release();
    expect((await again).every((a) => a.status === 200)).toBe(true);
    expect(w.probes()).toBe(2);
  });

  it('says a closing worker at once, from the cached probe', async () => {
    const w = await world();
    const first = w.get();
    await w.release();
    expect((await first).status).toBe(200);
    w.setWhyNoJobs('worker is closing');
    expect(await w.get()).toEqual({ status: 503, text: 'not ready: worker: worker is closing\n' });
    expect(w.probes()).toBe(1);
  });
});
