import { Queue } from 'bullmq';
import Dockerode from 'dockerode';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { WorkerConfig } from '../../src/config/worker.js';
import { LABELS } from '../../src/jobs/names.js';
import { PROBE_TTL_MS } from '../../src/server/metrics.js';
import { startWorkerEndpoint, type WorkerEndpoint } from '../../src/server/worker-endpoint.js';
import type { WorkerDeps, WorkerHandle } from '../../src/worker/worker.js';
import { stevedore } from '../helpers/cli.js';
import { TEST_IMAGE, testDocker } from '../helpers/docker.js';
import { FreezableDockerProxy } from '../helpers/docker-proxy.js';
import { parseProm, sampleOf } from '../helpers/prom-text.js';
import { TestRegistry } from '../helpers/registry.js';
import { buildTestImage, pushImage, removeImage } from '../helpers/registry-images.js';
import { busybox, until, untilRunning, useTestWorld } from '../helpers/stevedore.js';

// The worker's HTTP endpoint against a real worker, Redis, engine and registry.
const world = useTestWorld();
const docker = testDocker();
const LOCAL = 'stevedore-test/http-metrics:a';
let registry: TestRegistry;
let imageId: string;
let endpoint: WorkerEndpoint | undefined;

beforeAll(async () => {
  registry = await TestRegistry.start();
  imageId = await buildTestImage(docker, LOCAL, { variant: 'metrics', randomBytes: 64 * 1024, layers: 1 });
  await pushImage(docker, LOCAL, registry.ref('metrics/app', '1'));
  await removeImage(docker, imageId);
});

afterAll(async () => {
  await removeImage(docker, imageId);
  await registry?.close();
});

afterEach(async () => {
  await endpoint?.close();
  endpoint = undefined;
});

/** A worker with its endpoint on a free loopback port, as `stevedore worker --http` wires it. */
async function observedWorker(
  overrides: Partial<WorkerConfig> = {},
  deps: WorkerDeps = {},
): Promise<{ worker: WorkerHandle; url: string }> {
  endpoint = await startWorkerEndpoint({ host: '127.0.0.1', port: 0 }, pino({ level: 'silent' }));
  const worker = await world.h.worker(overrides, { ...deps, events: endpoint.events });
  endpoint.attach(worker);
  return { worker, url: `http://127.0.0.1:${endpoint.address.port}` };
}

async function get(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url);
  return { status: res.status, text: await res.text() };
}

describe('the worker HTTP endpoint', () => {
  it('/metrics counts jobs by outcome, phases, pulls and output after a few known jobs', async () => {
    const { url } = await observedWorker();
    const client = world.h.client();
    const done = await client.submit(busybox(['sh', '-c', 'printf hello']));
    const exit3 = await client.submit(busybox(['sh', '-c', 'printf oops >&2; exit 3']));
    const pulled = await client.submit({
      image: registry.ref('metrics/app', '1'),
      command: ['cat', '/variant'],
    });
    const missing = await client.submit({ image: registry.ref('metrics/none', '1'), command: ['true'] });
    const queue = new Queue(world.h.queue, { connection: { host: '127.0.0.1', port: world.redis.port } });
    const invalid = await queue.add('run', { image: 'x' }, { jobId: 'invalid-one' });
    await queue.close();
    const results = await Promise.all(
      [done.id, exit3.id, pulled.id, missing.id, invalid.id as string].map((id) =>
        client.waitForResult(id, { timeoutMs: 60_000 }),
      ),
    );
    expect(results.map((r) => [r.state, r.reason, r.exitCode])).toEqual([
      ['Complete', 'exited', 0],
      ['Complete', 'exited', 3],
      ['Complete', 'exited', 0],
      ['Failed', 'image', null],
      ['Failed', 'invalid', null],
    ]);
    // A result is stored a moment before BullMQ's own bookkeeping ends; the counter is set before either.
    const { status, text } = await get(`${url}/metrics`);
    expect(status).toBe(200);
    const s = parseProm(text);
    const q = world.h.queue;
    expect(sampleOf(s, 'stevedore_jobs_total', { queue: q, state: 'Complete', reason: 'exited' })).toBe(3);
    expect(sampleOf(s, 'stevedore_jobs_total', { queue: q, state: 'Failed', reason: 'image' })).toBe(1);
    expect(sampleOf(s, 'stevedore_jobs_total', { queue: q, state: 'Failed', reason: 'invalid' })).toBe(1);
    // Four jobs ran (the invalid one never entered the state machine); three got a container.
    for (const phase of ['queued', 'loading-image', 'finalizing'])
      expect(sampleOf(s, 'stevedore_job_phase_seconds_count', { phase }), phase).toBe(4);
    for (const phase of ['creating', 'starting', 'running'])
      expect(sampleOf(s, 'stevedore_job_phase_seconds_count', { phase }), phase).toBe(3);
    expect(sampleOf(s, 'stevedore_job_phase_seconds_bucket', { phase: 'running', le: '+Inf' })).toBe(3);
    expect(sampleOf(s, 'stevedore_image_pulls_total', { result: 'pulled' })).toBe(1);
    expect(sampleOf(s, 'stevedore_image_pulls_total', { result: 'failed' })).toBe(1);
    expect(sampleOf(s, 'stevedore_image_pull_seconds_count')).toBe(2);
    expect(sampleOf(s, 'stevedore_output_bytes_total', { stream: 'stdout' })).toBe(
      'hello'.length + (results[2]?.stdout.bytes ?? 0),
    );
    expect(sampleOf(s, 'stevedore_output_bytes_total', { stream: 'stderr' })).toBe('oops'.length);
    expect(sampleOf(s, 'stevedore_jobs_running')).toBe(0);
    expect(sampleOf(s, 'stevedore_worker_capacity')).toBe(2);
    expect(sampleOf(s, 'stevedore_engine_up')).toBe(1);
    expect(sampleOf(s, 'stevedore_redis_up')).toBe(1);
    expect(sampleOf(s, 'stevedore_adoptions_total')).toBe(0);
    expect(sampleOf(s, 'stevedore_queue_jobs', { state: 'active' })).toBeGreaterThanOrEqual(0);
    expect(sampleOf(s, 'nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
  });

  it('/readyz turns 503 naming Redis while it is stopped, and 200 when it is back', async () => {
    const { url } = await observedWorker();
    expect(await get(`${url}/readyz`)).toEqual({ status: 200, text: 'ready\n' });
    expect(await stevedore(['health', '--http', url.replace('http://', '')])).toMatchObject({ exitCode: 0 });
    await world.redis.stop();
    try {
      const down = await until(async () => {
        const answer = await get(`${url}/readyz`);
        return answer.status === 503 ? answer : null;
      });
      expect(down.text).toMatch(/^not ready: redis: /);
      expect(down.text).not.toMatch(/engine|worker:/);
      expect((await get(`${url}/healthz`)).status).toBe(200);
      const health = await stevedore(['health', '--http', url.replace('http://', '')]);
      expect(health.exitCode).toBe(1);
      expect(health.stderr).toMatch(/503 not ready: redis: /);
      const s = parseProm((await get(`${url}/metrics`)).text);
      expect(sampleOf(s, 'stevedore_redis_up')).toBe(0);
    } finally {
      await world.redis.startAgain();
    }
    await until(async () => (await get(`${url}/readyz`)).status === 200);
  });

  it('/readyz turns 503 naming the engine while it does not answer, and 200 when it does again', async () => {
    const proxy = await FreezableDockerProxy.start();
    try {
      const { url } = await observedWorker(
        {},
        { runtimeOptions: { docker: { client: new Dockerode({ socketPath: proxy.socketPath }) } } },
      );
      expect((await get(`${url}/readyz`)).status).toBe(200);
      proxy.frozen = true;
      // The probe is cached for PROBE_TTL_MS (at most one per that long, however many ask).
      await new Promise((resolve) => setTimeout(resolve, PROBE_TTL_MS));
      const down = await get(`${url}/readyz`);
      expect(down.status).toBe(503);
      expect(down.text).toMatch(/^not ready: engine: /);
      expect(down.text).not.toMatch(/redis:/);
      expect(sampleOf(parseProm((await get(`${url}/metrics`)).text), 'stevedore_engine_up')).toBe(0);
      proxy.frozen = false;
      await until(async () => (await get(`${url}/readyz`)).status === 200);
    } finally {
      proxy.frozen = false;
      await world.h.close();
      await proxy.close();
    }
  });

  it('/readyz is 503 while the worker closes', async () => {
    const { worker, url } = await observedWorker();
    const client = world.h.client();
    const { id } = await client.submit(busybox(['sleep', '30']));
    await untilRunning(client, id);
    const closed = worker.close({ graceMs: 60_000 });
    try {
      expect(await get(`${url}/readyz`)).toEqual({
        status: 503,
        text: 'not ready: worker: worker is closing\n',
      });
      expect((await stevedore(['health', '--http', url.replace('http://', '')])).exitCode).toBe(1);
    } finally {
      await client.cancel(id);
      await closed;
    }
  });

  it('counts an adopted container and a leftover container reconciling removed', async () => {
    const logDir = (await world.h.config()).logDir;
    const first = await world.h.worker({ onShutdown: 'detach', logDir });
    const client = world.h.client();
    const { id } = await client.submit(busybox(['sleep', '30'], { stopGraceSeconds: 0 }));
    await untilRunning(client, id);
    await first.close();
    const leftover = await docker.createContainer({
      Image: TEST_IMAGE,
      Cmd: ['true'],
      Labels: {
        [LABELS.queue]: world.h.queue,
        [LABELS.jobId]: 'unknown-job',
        [LABELS.attempt]: '1',
        [LABELS.deployment]: await world.h.deployment(),
      },
    });
    // Reconciling leaves a container younger than one lock duration alone: age it past the 1 s minimum.
    await new Promise((r) => setTimeout(r, 1_100));
    endpoint = await startWorkerEndpoint({ host: '127.0.0.1', port: 0 }, pino({ level: 'silent' }));
    const events = endpoint.events;
    // Leaving `admitted` on an adoption is entering `running` (a cancel before it would stop the run before adopt()).
    const running = new Promise<void>((resolve) =>
      events.on('phase-ended', (e) => e.phase === 'admitted' && e.jobId === id && resolve()),
    );
    const second = await world.h.worker({ logDir, lockDurationMs: 1_000 }, { events });
    endpoint.attach(second);
    await running;
    await client.cancel(id);
    expect(await client.waitForResult(id, { timeoutMs: 20_000 })).toMatchObject({
      state: 'Cancelled',
      adopted: true,
    });
    await expect(leftover.inspect()).rejects.toMatchObject({ statusCode: 404 });
    const s = parseProm((await get(`http://127.0.0.1:${endpoint.address.port}/metrics`)).text);
    expect(sampleOf(s, 'stevedore_adoptions_total')).toBe(1);
    expect(sampleOf(s, 'stevedore_containers_reconciled_total', { action: 'removed' })).toBe(1);
    expect(sampleOf(s, 'stevedore_jobs_total', { state: 'Cancelled', reason: 'cancelled' })).toBe(1);
    // An adopted run starts at running: no image was loaded and no container made for it here.
    expect(sampleOf(s, 'stevedore_job_phase_seconds_count', { phase: 'loading-image' })).toBeUndefined();
    expect(sampleOf(s, 'stevedore_job_phase_seconds_count', { phase: 'running' })).toBe(1);
  });

  it('stevedore health exits 1 when nothing answers, 2 on a bad address', async () => {
    const server = await startWorkerEndpoint({ host: '127.0.0.1', port: 0 }, pino({ level: 'silent' }));
    const port = server.address.port;
    await server.close();
    const none = await stevedore(['health', '--http', `127.0.0.1:${port}`]);
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toMatch(/cannot ask: connect ECONNREFUSED/);
    const bad = await stevedore(['health', '--http', 'nowhere']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/--http="nowhere" is invalid/);
  });
});
