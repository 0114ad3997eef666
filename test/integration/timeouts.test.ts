import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Job, Queue } from 'bullmq';
import Dockerode from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import type { WorkerConfig } from '../../src/config/worker.js';
import { keys } from '../../src/jobs/keys.js';
import { LABELS, labelFilters } from '../../src/jobs/names.js';
import type { JobResult } from '../../src/jobs/result.js';
import { podmanMissing } from '../helpers/podman.js';
import { silentRegistry } from '../helpers/silent-registry.js';
import { testSingularityBin } from '../helpers/singularity.js';
import { busybox, testPolicy, until, useTestWorld, writePolicy } from '../helpers/stevedore.js';

const bin = await testSingularityBin();
const sifCache = await mkdtemp(join(tmpdir(), 'stevedore-sif-timeouts-'));
const podmanDir = await mkdtemp(join(tmpdir(), 'stevedore-podman-timeouts-'));
afterAll(async () => {
  await rm(sifCache, { recursive: true, force: true });
  await rm(podmanDir, { recursive: true, force: true });
});

/** A timeout is a promise: each runtime keeps it (or the suite says why it cannot be asked here). */
const RUNTIMES: { kind: string; skip: string | null; config: Partial<WorkerConfig> }[] = [
  { kind: 'docker', skip: null, config: {} },
  {
    kind: 'podman',
    skip: podmanMissing(),
    // Nothing serves the socket: the worker starts podman system service.
    config: { runtime: 'podman', podmanSocket: join(podmanDir, 'podman.sock') },
  },
  {
    kind: 'singularity',
    skip: bin === null ? 'neither apptainer nor singularity is installed' : null,
    config: { runtime: 'singularity', singularity: { bin: bin ?? '', sifCache } },
  },
];

const world = useTestWorld();

for (const runtime of RUNTIMES) {
  if (runtime.skip) console.warn(`[skip] timeouts on ${runtime.kind}: ${runtime.skip}`);
  describe.skipIf(runtime.skip !== null)(`run and no-output timeouts on ${runtime.kind}`, () => {
    it('noOutputSeconds stops a silent sleep after its first line: Cancelled, timeout, in running', async () => {
      await world.h.worker(runtime.config);
      const client = world.h.client();
      const silent = await client.submit(
        busybox(['sh', '-c', 'echo started; sleep 60'], {
          timeouts: { noOutputSeconds: 2 },
          stopGraceSeconds: 1,
        }),
      );
      // The same limit, and output every 0.3 s for 2 s: never 2 s of silence.
      const chatty = await client.submit(
        busybox(['sh', '-c', 'for i in 1 2 3 4 5 6 7; do echo $i; sleep 0.3; done'], {
          timeouts: { noOutputSeconds: 2 },
        }),
      );
      const result = await client.waitForResult(silent.id, { timeoutMs: 60_000 });
      expect(result).toMatchObject({
        state: 'Cancelled',
        reason: 'timeout',
        oomKilled: false,
        timeout: { field: 'timeouts.noOutputSeconds', name: 'noOutputSeconds', phase: 'running', seconds: 2 },
        error: { phase: 'running' },
        stdout: { tail: 'started\n' },
      });
      expect(result.startedAt).not.toBeNull();
      const kept = await client.waitForResult(chatty.id, { timeoutMs: 60_000 });
      expect(kept).toMatchObject({ state: 'Complete', reason: 'exited', exitCode: 0, error: null });
      expect(kept).not.toHaveProperty('timeout');
    });

    it('timeouts.runSeconds stops a running job: Cancelled, timeout, the field named', async () => {
      await world.h.worker(runtime.config);
      const client = world.h.client();
      const { id } = await client.submit(
        busybox(['sh', '-c', 'echo going; sleep 60'], { timeouts: { runSeconds: 4 }, stopGraceSeconds: 1 }),
      );
      const result = await client.waitForResult(id, { timeoutMs: 60_000 });
      expect(result).toMatchObject({
        state: 'Cancelled',
        reason: 'timeout',
        timeout: { field: 'timeouts.runSeconds', name: 'runSeconds', seconds: 4 },
      });
      // Counted from admission, as maxRunTimeSeconds always was: on a slow host it may run out
      // before the container runs, and then it never does.
      if (result.timeout?.phase === 'running') expect(result.stdout.tail).toBe('going\n');
      else expect(result.startedAt).toBeNull();
    });
  });
}

describe('timeouts before the run (docker)', () => {
  it('queueSeconds with no worker running: the job ends Cancelled, timeout, phase queued, and no worker ever takes it', async () => {
    const client = world.h.client();
    const { id } = await client.submit(busybox(['echo', 'ran'], { timeouts: { queueSeconds: 1 } }));
    const result = await client.waitForResult(id, { timeoutMs: 20_000 });
    expect(result).toMatchObject({
      jobId: id,
      state: 'Cancelled',
      reason: 'timeout',
      containerId: null,
      startedAt: null,
      worker: null,
      timeout: { field: 'timeouts.queueSeconds', name: 'queueSeconds', phase: 'queued', seconds: 1 },
      error: { phase: 'queued' },
    });
    expect(result.error?.message).toMatch(
      /the job waited in the queue 1 s, the limit of timeouts.queueSeconds/,
    );
    const queue = new Queue(world.h.queue, { connection: world.raw });
    try {
      expect(await Job.fromId(queue, id)).toBeUndefined();
    } finally {
      await queue.close();
    }
    // A worker that starts now runs the next job, and never sees this one.
    const worker = await world.h.worker();
    const admitted: string[] = [];
    worker.events.on('job-admitted', ({ jobId }) => admitted.push(jobId));
    const next = await client.submit(busybox(['echo', 'next']));
    expect(await client.waitForResult(next.id, { timeoutMs: 20_000 })).toMatchObject({ state: 'Complete' });
    expect(admitted).toEqual([next.id]);
    expect(await client.getResult(id)).toEqual(result);
  });

  it('queueSeconds while every slot is busy: a worker’s own sweep ends the job, nobody asking', async () => {
    const worker = await world.h.worker({ concurrency: 1 });
    const admitted: string[] = [];
    worker.events.on('job-admitted', ({ jobId }) => admitted.push(jobId));
    const client = world.h.client();
    const busy = await client.submit(busybox(['sleep', '5']));
    await until(async () => admitted.includes(busy.id));
    const { id } = await client.submit(busybox(['echo', 'ran'], { timeouts: { queueSeconds: 1 } }));
    // Read straight from Redis: no client call may be what ends it.
    const text = await until(
      () => world.raw.get(keys.result({ prefix: 'bull', queue: world.h.queue }, id)),
      20_000,
    );
    expect(JSON.parse(text) as JobResult).toMatchObject({
      state: 'Cancelled',
      reason: 'timeout',
      error: { phase: 'queued' },
    });
    expect(await client.waitForResult(busy.id, { timeoutMs: 20_000 })).toMatchObject({
      state: 'Complete',
      exitCode: 0,
    });
    expect(admitted).toEqual([busy.id]);
  });

  it('queueSeconds racing admission on two workers and an asking client: each job runs once or ends queued with no container, never both', async () => {
    const docker = new Dockerode();
    // Every container the engine creates for this queue, by job id (the engine's word, not ours).
    const events = (await docker.getEvents({
      filters: { type: ['container'], event: ['create'], label: labelFilters(world.h.queue) },
    })) as NodeJS.ReadableStream & { destroy(): void };
    const created: string[] = [];
    let buffered = '';
    events.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines.filter((l) => l.trim())) {
        const event = JSON.parse(line) as { Actor?: { Attributes?: Record<string, string> } };
        created.push(event.Actor?.Attributes?.[LABELS.jobId] ?? '?');
      }
    });
    try {
      await world.h.worker({ concurrency: 2 });
      await world.h.worker({ concurrency: 2 });
      const client = world.h.client();
      const ids: string[] = [];
      for (let i = 0; i < 24; i++)
        ids.push((await client.submit(busybox(['sleep', '0.3'], { timeouts: { queueSeconds: 1 } }))).id);
      // The client's waits ask at each deadline too: its sweeps race the workers' and their admissions.
      const results = await Promise.all(ids.map((id) => client.waitForResult(id, { timeoutMs: 120_000 })));
      await new Promise((r) => setTimeout(r, 300)); // events the engine already sent
      const ran = results.filter((r) => r.reason !== 'timeout');
      const ended = results.filter((r) => r.reason === 'timeout');
      for (const result of ran) {
        expect(result).toMatchObject({ state: 'Complete', exitCode: 0 });
        expect(created.filter((id) => id === result.jobId)).toHaveLength(1);
      }
      for (const result of ended) {
        expect(result).toMatchObject({ state: 'Cancelled', containerId: null, timeout: { phase: 'queued' } });
        expect(created).not.toContain(result.jobId);
      }
      // Four slots and 24 jobs: some run in time and some cannot (the test proves nothing otherwise).
      expect(ran.length).toBeGreaterThan(0);
      expect(ended.length).toBeGreaterThan(0);
    } finally {
      events.destroy();
    }
  });

  it('queueSeconds of a job enqueued straight into BullMQ (no deadline registered): the worker ends it at admission', async () => {
    const worker = await world.h.worker();
    const admitted: string[] = [];
    worker.events.on('job-admitted', ({ jobId }) => admitted.push(jobId));
    const queue = new Queue(world.h.queue, { connection: world.raw });
    try {
      const job = await queue.add('run', busybox(['echo', 'ran'], { timeouts: { queueSeconds: 1 } }), {
        delay: 2_000,
      });
      const result = await world.h.client().waitForResult(job.id as string, { timeoutMs: 20_000 });
      expect(result).toMatchObject({
        state: 'Cancelled',
        reason: 'timeout',
        containerId: null,
        timeout: { name: 'queueSeconds', phase: 'queued' },
      });
      expect(admitted).toEqual([]);
    } finally {
      await queue.close();
    }
  });

  it('imageSeconds ends a pull from a registry that never answers: Cancelled, timeout, in loading-image', async () => {
    const silent = await silentRegistry();
    try {
      // The worker's own stall timeout is far off: the job's limit is what ends the wait.
      await world.h.worker({ pullStallMs: 120_000 });
      const client = world.h.client();
      const { id } = await client.submit({
        image: `${silent.host}/hangs/app:1`,
        command: ['true'],
        timeouts: { imageSeconds: 2 },
      });
      const result = await client.waitForResult(id, { timeoutMs: 30_000 });
      expect(result).toMatchObject({
        state: 'Cancelled',
        reason: 'timeout',
        containerId: null,
        timeout: { field: 'timeouts.imageSeconds', phase: 'loading-image', seconds: 2 },
        error: { phase: 'loading-image' },
      });
    } finally {
      await silent.close();
    }
  });

  it('startSeconds shorter than any create: the container is made but never started', async () => {
    await world.h.worker();
    const client = world.h.client();
    const { id } = await client.submit(busybox(['echo', 'ran'], { timeouts: { startSeconds: 0.001 } }));
    const result = await client.waitForResult(id, { timeoutMs: 20_000 });
    expect(result).toMatchObject({
      state: 'Cancelled',
      reason: 'timeout',
      exitCode: null,
      startedAt: null,
      timeout: { field: 'timeouts.startSeconds', phase: 'creating' },
      stdout: { bytes: 0 },
    });
  });

  it('a timeout over the worker policy’s cap is refused as invalid, naming the field and the cap', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stevedore-timeouts-policy-'));
    try {
      const policyPath = await writePolicy(dir, {
        ...testPolicy(),
        timeouts: { noOutputSeconds: { max: 60 } },
      });
      await world.h.worker({ policyPath });
      const client = world.h.client();
      const { id } = await client.submit(busybox(['true'], { timeouts: { noOutputSeconds: 61 } }));
      const result = await client.waitForResult(id, { timeoutMs: 20_000 });
      expect(result).toMatchObject({ state: 'Failed', reason: 'invalid', containerId: null });
      expect(result.error?.message).toBe(
        "denied by policy: timeouts.noOutputSeconds 61 is over the policy's cap 60 (timeouts.noOutputSeconds.max)",
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
