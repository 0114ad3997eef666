import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { labelFilters } from '../../src/jobs/names.js';
import { testDocker } from '../helpers/docker.js';
import { busybox, useTestWorld } from '../helpers/stevedore.js';

describe('job path: submit → worker → container → result', () => {
  const world = useTestWorld();

  it.each([0, 1, 42])('reports exit code %i as a Complete result with tails', async (code) => {
    await world.h.worker();
    const client = world.h.client();
    const { id } = await client.submit(
      busybox(['sh', '-c', `echo out-${code}; echo err-${code} >&2; exit ${code}`], {
        labels: { team: 'qa' },
      }),
    );
    const result = await client.waitForResult(id, { timeoutMs: 30_000 });
    expect(result).toMatchObject({
      jobId: id,
      state: 'Complete',
      reason: 'exited',
      exitCode: code,
      signal: null,
      oomKilled: false,
      image: 'stevedore-test/busybox:1',
      attempt: 1,
      labels: { team: 'qa' },
      error: null,
      stdout: { bytes: `out-${code}\n`.length, tail: `out-${code}\n`, truncated: false },
      stderr: { bytes: `err-${code}\n`.length, tail: `err-${code}\n` },
    });
    expect(result.runtime).toMatch(/^docker /);
    expect(result.containerId).toMatch(/^[0-9a-f]{64}$/);
    expect(result.worker?.id).toBe(world.h.workers[0]?.id);
    expect(result.phases).toHaveProperty('running');
    expect(await readFile(result.stdout.path as string, 'utf8')).toBe(`out-${code}\n`);
    expect(await client.getResult(id)).toEqual(result);
    const progress = await client.getProgress(id);
    expect(progress?.history.map((p) => p.phase)).toEqual([
      'admitted',
      'loading-image',
      'creating',
      'starting',
      'running',
      'finalizing',
      'done',
    ]);
    // The container is removed right after the result is written (off the critical path).
    const left = async () =>
      testDocker().listContainers({
        all: true,
        filters: { label: labelFilters(world.h.queue, id) },
      });
    for (let i = 0; i < 100 && (await left()).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await left()).map((c) => `${c.Id.slice(0, 12)} ${c.State} ${c.Status}`)).toEqual([]);
  });
});
