import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pingSocket } from '../../src/executors/podman/service.js';
import { labelFilters } from '../../src/jobs/names.js';
import { podmanMissing } from '../helpers/podman.js';
import { busybox, useTestWorld } from '../helpers/stevedore.js';

const reason = podmanMissing();
if (reason) console.warn(`[skip] podman job path: ${reason}`);

describe.skipIf(reason !== null)('job path on podman: submit → worker on podman → result', () => {
  const world = useTestWorld();
  let dir = '';
  let socket = '';
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stevedore-podman-job-'));
    socket = join(dir, 'podman.sock'); // nothing serves it: the worker starts podman system service
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('runs a job to its exit code, output and usage, and stops the service it started', async () => {
    const worker = await world.h.worker({ runtime: 'podman', podmanSocket: socket });
    const client = world.h.client();
    const { id } = await client.submit(
      busybox(
        ['sh', '-c', 'echo out; echo err >&2; head -c 20000000 /dev/zero | md5sum >/dev/null; exit 3'],
        {
          runtime: 'podman',
        },
      ),
    );
    const result = await client.waitForResult(id, { timeoutMs: 60_000 });
    expect(result).toMatchObject({
      jobId: id,
      state: 'Complete',
      reason: 'exited',
      exitCode: 3,
      signal: null,
      oomKilled: false,
      image: 'stevedore-test/busybox:1',
      error: null,
      stdout: { bytes: 4, tail: 'out\n', truncated: false },
      stderr: { bytes: 4, tail: 'err\n' },
    });
    expect(result.runtime).toMatch(/^podman \d+\.\d+/);
    expect(result.containerId).toMatch(/^[0-9a-f]{64}$/);
    expect(await readFile(result.stdout.path as string, 'utf8')).toBe('out\n');
    // Podman honours the per-job parent cgroup, so the whole run's counters are there.
    expect(result.usage?.cpuSeconds).toBeGreaterThan(0);
    expect(result.usage?.peakMemoryBytes).toBeGreaterThan(0);

    // The container goes after the result, on Podman's side (Docker never saw it).
    const podman = new Dockerode({ socketPath: socket });
    const left = async () =>
      podman.listContainers({ all: true, filters: { label: labelFilters(world.h.queue, id) } });
    for (let i = 0; i < 200 && (await left()).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await left()).toEqual([]);

    await worker.close({ graceMs: 0 });
    await expect(pingSocket(socket)).rejects.toThrow();
  });

  it('fails a job that asks for docker as invalid, naming the field', async () => {
    await world.h.worker({ runtime: 'podman', podmanSocket: socket });
    const client = world.h.client();
    const { id } = await client.submit(busybox(['true'], { runtime: 'docker' }));
    const result = await client.waitForResult(id, { timeoutMs: 60_000 });
    expect(result).toMatchObject({ state: 'Failed', reason: 'invalid' });
    expect(result.error?.message).toMatch(
      /runtime: asks for runtime "docker", but no live worker on queue "[^"]+" runs it \(they run podman\)/,
    );
  });
});
