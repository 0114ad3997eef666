import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
    const client = world.h.client();
    const { id } = await client.submit(
      busybox(['true'], { mounts: { '/in\r\nx': { hostPath: '/tmp', readOnly: true } } }),
    );
    const result = await client.waitForResult(id, { timeoutMs: 60_000 });
    expect(result).toMatchObject({ state: 'Failed', reason: 'invalid', error: { phase: 'validating' } });
    expect(result.error?.message).toContain(
      'mounts./in\r\nx: container path contains a carriage return followed by a line feed',
    );
    expect(result.containerId).toBeFalsy();
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
