import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, describe, expect, it } from 'vitest';
import { testSingularityBin } from '../helpers/singularity.js';
import { busybox, useTestWorld } from '../helpers/stevedore.js';

const bin = await testSingularityBin();
const sifCache = await mkdtemp(join(tmpdir(), 'stevedore-sif-job-'));
afterAll(() => rm(sifCache, { recursive: true, force: true }));

describe.skipIf(bin === null)('job path on Apptainer: submit → worker (runtime singularity) → result', () => {
  if (bin === null)
    console.warn('[skip] singularity job path: neither apptainer nor singularity is installed');
  const world = useTestWorld();

  it('runs the job and reports its exit code, output, runtime, cgroup and usage', async () => {
    await world.h.worker({ runtime: 'singularity', singularity: { bin: bin as string, sifCache } });
    const client = world.h.client();
    const { id } = await client.submit(
      busybox(['sh', '-c', 'echo out-$A; echo err >&2; exit 3'], {
        env: { A: '1' },
        resources: { ram: '64Mi' },
      }),
    );
    const result = await client.waitForResult(id, { timeoutMs: 60_000 });
    expect(result).toMatchObject({
      state: 'Complete',
      reason: 'exited',
      exitCode: 3,
      error: null,
      adopted: false,
      stdout: { tail: 'out-1\n' },
      stderr: { tail: 'err\n' },
    });
    expect(result.runtime).toMatch(/^(apptainer|singularity)/);
    expect(result.cgroupId).toMatch(/^\/stevedore\/singularity\/[0-9a-f-]{36}$/);
    expect(result.imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(result.usage?.cpuSeconds).toBeGreaterThan(0);
    expect(result).not.toHaveProperty('limitsNotApplied');
    expect(await readFile(result.stdout.path as string, 'utf8')).toBe('out-1\n');
  });

  it('refuses a mount path Apptainer cannot take literally as invalid, naming the field', async () => {
    await world.h.worker({ runtime: 'singularity', singularity: { bin: bin as string, sifCache } });
    // As a producer using BullMQ directly would: the client refuses such a spec before it is sent.
    const queue = new Queue(world.h.queue, { connection: { host: '127.0.0.1', port: world.redis.port } });
    try {
      const job = await queue.add(
        'run',
        busybox(['true'], { mounts: { '/in\r\nx': { hostPath: '/tmp', readOnly: true } } }),
      );
      const result = await world.h.client().waitForResult(job.id as string, { timeoutMs: 60_000 });
      expect(result).toMatchObject({ state: 'Failed', reason: 'invalid', error: { phase: 'validating' } });
      // Control characters are refused for every runtime, before Apptainer's own rule (a CR LF
      // its reader turns into a LF) is asked.
      expect(result.error?.message).toContain(
        'mounts."/in\\r\\nx": key container path must not contain control characters',
      );
      expect(result.containerId).toBeFalsy();
    } finally {
      await queue.close();
    }
  });

  it('on a queue with a docker and an Apptainer worker, each job runs on the runtime it names', async () => {
    // The docker worker starts first and takes the Apptainer job too, then hands it back.
    await world.h.worker({ workerId: 'route-docker' });
    await world.h.worker({
      workerId: 'route-sif',
      runtime: 'singularity',
      singularity: { bin: bin as string, sifCache },
    });
    const client = world.h.client();
    const sifJob = await client.submit(busybox(['echo', 'on apptainer'], { runtime: 'singularity' }));
    const dockerJob = await client.submit(busybox(['echo', 'on docker'], { runtime: 'docker' }));
    const eitherJob = await client.submit(busybox(['echo', 'on either']));
    const wait = (id: string) => client.waitForResult(id, { timeoutMs: 60_000 });
    const [sif, dock, either] = await Promise.all([wait(sifJob.id), wait(dockerJob.id), wait(eitherJob.id)]);
    expect(sif).toMatchObject({
      state: 'Complete',
      worker: { id: 'route-sif' },
      stdout: { tail: 'on apptainer\n' },
    });
    expect(sif.runtime).toMatch(/^(apptainer|singularity)/);
    expect(dock).toMatchObject({
      state: 'Complete',
      worker: { id: 'route-docker' },
      stdout: { tail: 'on docker\n' },
    });
    expect(dock.runtime).toMatch(/^docker/);
    expect(either).toMatchObject({ state: 'Complete', exitCode: 0 });
  });
});
