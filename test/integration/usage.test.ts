import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { JobResult } from '../../src/jobs/result.js';
import { busybox, useTestWorld } from '../helpers/stevedore.js';

/** The per-job parents live here on these machines (cgroup v1, cgroupfs driver), under the deployment's id. */
const PARENTS = '/sys/fs/cgroup/memory/stevedore';
const ALLOC_BYTES = 50_000_000;

const parents = async (deployment: string): Promise<string[]> =>
  (await readdir(join(PARENTS, deployment), { withFileTypes: true }).catch(() => []))
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name);

describe('usage in every result', () => {
  const world = useTestWorld();

  it('`true`, a short busy loop and a 50 MB allocation have exact CPU and peak memory; parents are removed', async () => {
    const { h } = world;
    const deployment = await h.deployment();
    const before = new Set(await parents(deployment));
    await h.worker();
    const client = h.client();
    const jobs = {
      trivial: busybox(['true']),
      busy: busybox(['sh', '-c', 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done']),
      // sh keeps the whole 50 MB string in memory.
      alloc: busybox(['sh', '-c', `x=$(head -c ${ALLOC_BYTES} /dev/zero | tr "\\0" a); echo \${#x}`]),
    };
    const names = Object.keys(jobs) as (keyof typeof jobs)[];
    const submitted = await Promise.all(names.map((name) => client.submit(jobs[name])));
    const finished = await Promise.all(
      submitted.map(({ id }) => client.waitForResult(id, { timeoutMs: 30_000 })),
    );
    const results = Object.fromEntries(names.map((name, i) => [name, finished[i]])) as Record<
      keyof typeof jobs,
      JobResult
    >;
    for (const name of names) {
      const result = results[name];
      expect(result.state, name).toBe('Complete');
      expect(result.usage?.cpuSeconds, name).toBeTypeOf('number');
      expect(result.usage?.peakMemoryBytes, name).toBeTypeOf('number');
      expect(result.usage?.cpuSeconds, name).toBeGreaterThan(0);
      const events = await readFile(join(dirname(result.stdout.path as string), 'events.log'), 'utf8');
      expect(events, name).not.toMatch(/usage incomplete/);
    }
    expect(results.busy.usage?.cpuSeconds).toBeGreaterThan(results.trivial.usage?.cpuSeconds ?? 0);
    expect(results.alloc.stdout.tail).toBe(`${ALLOC_BYTES}\n`);
    expect(results.alloc.usage?.peakMemoryBytes).toBeGreaterThanOrEqual(ALLOC_BYTES);
    await h.close();
    // Each job's parent cgroup went with its container.
    expect((await parents(deployment)).filter((p) => !before.has(p))).toEqual([]);
  });
});
