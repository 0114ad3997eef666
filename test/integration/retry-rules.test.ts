import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { WorkerConfig } from '../../src/config/worker.js';
import { labelFilters } from '../../src/jobs/names.js';
import { RETRY_LIMITS, type RetryInput } from '../../src/jobs/retry.js';
import { testDocker } from '../helpers/docker.js';
import { dockerApiWatch, type EngineWatch, singularityWatch } from '../helpers/engine-watch.js';
import { podmanMissing } from '../helpers/podman.js';
import { testSingularityBin } from '../helpers/singularity.js';
import { busybox, untilRunning, useTestWorld, writePolicy } from '../helpers/stevedore.js';

const bin = await testSingularityBin();
const podmanReason = podmanMissing();
const sifCache = await mkdtemp(join(tmpdir(), 'stevedore-retry-sif-'));
afterAll(() => rm(sifCache, { recursive: true, force: true }));

/** No wait between runs: the tests count runs, not delays. */
const NOW = { type: 'fixed', delaySeconds: 0 } as const;

/**
 * Counts its runs in a read-write mount, next to what Stevedore told it (STEVEDORE_ATTEMPT and
 * STEVEDORE_JOB_ID), and exits 75 until its third run.
 */
const COUNTING = [
  'sh',
  '-c',
  'n=$(cat /data/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/count; ' +
    'echo "$n $STEVEDORE_ATTEMPT $STEVEDORE_JOB_ID" >> /data/runs; [ $n -ge 3 ] && exit 0; exit 75',
];

interface RuntimeCase {
  name: string;
  skip: string | null;
  /**
   * The worker's settings for this runtime, and a watch on what its engine creates; `scratch` is
   * a directory for the runtime's own files (never the job's mount: the policy refuses a mount
   * that holds a runtime's socket).
   */
  setup(scratch: string): {
    overrides: Partial<WorkerConfig>;
    watch(config: WorkerConfig): Promise<EngineWatch>;
  };
}

const RUNTIMES: RuntimeCase[] = [
  {
    name: 'docker',
    skip: null,
    setup: () => ({ overrides: {}, watch: (config) => dockerApiWatch(testDocker(), config.queue) }),
  },
  {
    name: 'podman',
    skip: podmanReason,
    setup: (scratch) => {
      const podmanSocket = join(scratch, 'podman.sock');
      return {
        overrides: { runtime: 'podman', podmanSocket },
        watch: (config) => dockerApiWatch(new Dockerode({ socketPath: podmanSocket }), config.queue),
      };
    },
  },
  {
    name: 'singularity',
    skip: bin === null ? 'neither apptainer nor singularity is installed' : null,
    setup: () => ({
      overrides: { runtime: 'singularity', singularity: { bin: bin as string, sifCache } },
      watch: (config) => singularityWatch(join(config.stateDir, 'singularity'), sifCache),
    }),
  },
];

for (const runtime of RUNTIMES) {
  if (runtime.skip) console.warn(`[skip] retry rules on ${runtime.name}: ${runtime.skip}`);
  describe.skipIf(runtime.skip !== null)(`retry rules on ${runtime.name}`, () => {
    const world = useTestWorld();
    let dir = '';
    let scratch = '';
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'stevedore-retry-'));
      scratch = await mkdtemp(join(tmpdir(), 'stevedore-retry-runtime-'));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
      await rm(scratch, { recursive: true, force: true });
    });

    it('an onExitCodes [75] retry rule runs the job 3 times, the third succeeds; STEVEDORE_ATTEMPT agrees with the count, and the history with the engine', async () => {
      const { overrides, watch } = runtime.setup(scratch);
      // The runtime's own services start with the worker: the watch opens after it.
      const config = await world.h.config(overrides);
      await world.h.worker(config);
      const watching = await watch(config);
      const client = world.h.client();
      const { id } = await client.submit(
        busybox(COUNTING, {
          mounts: { '/data': { hostPath: dir, readOnly: false } },
          retry: { limit: 5, backoff: NOW, rules: [{ onExitCodes: [75], action: 'retry' }] },
        }),
      );
      const result = await client.waitForResult(id, { timeoutMs: 120_000 });
      const activity = await watching.stop();
      expect(result).toMatchObject({ state: 'Complete', reason: 'exited', exitCode: 0, attempt: 3 });
      expect(await readFile(join(dir, 'runs'), 'utf8')).toBe(`1 1 ${id}\n2 2 ${id}\n3 3 ${id}\n`);
      expect(
        result.attempts.map((a) => [a.attempt, a.exitCode, a.retried, a.budget, a.rule?.index ?? null]),
      ).toEqual([
        [1, 75, true, 'limit', 0],
        [2, 75, true, 'limit', 0],
        [3, 0, false, null, null],
      ]);
      for (const a of result.attempts) {
        expect(a.worker).toBe(config.workerId);
        expect(Date.parse(a.startedAt ?? '')).toBeLessThanOrEqual(Date.parse(a.finishedAt ?? ''));
      }
      expect(result.attempts[0]?.why).toBe('exit code 75 (rule 0): rerun 1 of 5 from limit');
      // One container per run, as the engine saw them made.
      expect(activity.created).toHaveLength(result.attempts.length);
    });
  });
}

describe('retry rules on docker: each kind of rule', () => {
  const world = useTestWorld();
  let dir = '';
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stevedore-retry-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const run = async (command: string[], retry: RetryInput, extra = {}) => {
    await world.h.worker();
    const client = world.h.client();
    const { id } = await client.submit(
      busybox(command, { mounts: { '/data': { hostPath: dir, readOnly: false } }, retry, ...extra }),
    );
    return client.waitForResult(id, { timeoutMs: 120_000 });
  };
  const runsCounted = async () => Number((await readFile(join(dir, 'count'), 'utf8')).trim());
  const COUNT = 'n=$(cat /data/count 2>/dev/null || echo 0); echo $((n+1)) > /data/count; ';

  it('onReasons [oom] → fail runs once, even with a limit', async () => {
    const result = await run(
      ['sh', '-c', `${COUNT}x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived`],
      { limit: 3, backoff: NOW, rules: [{ onReasons: ['oom'], action: 'fail' }] },
      { resources: { ram: '16Mi' } },
    );
    expect(result).toMatchObject({ reason: 'oom', attempt: 1, rule: { index: 0, action: 'fail' } });
    expect(await runsCounted()).toBe(1);
    expect(result.attempts).toMatchObject([{ retried: false, why: 'reason oom: rule 0 says fail' }]);
  });

  it('a NotIn fail rule is final for every other code; the listed one falls through to limit', async () => {
    // Run 1 exits 2 (listed: not matched, retried from limit), run 2 exits 3 (matched: fail).
    const result = await run(['sh', '-c', `${COUNT}[ "$STEVEDORE_ATTEMPT" = 1 ] && exit 2; exit 3`], {
      limit: 4,
      backoff: NOW,
      rules: [{ onExitCodes: { operator: 'NotIn', values: [2] }, action: 'fail' }],
    });
    expect(result).toMatchObject({ state: 'Complete', exitCode: 3, attempt: 2 });
    expect(result.attempts.map((a) => [a.exitCode, a.retried, a.rule?.action ?? null])).toEqual([
      [2, true, null],
      [3, false, 'fail'],
    ]);
    expect(await runsCounted()).toBe(2);
  });

  it('a complete rule counts a failing exit as a success, noting the rule', async () => {
    const result = await run(['sh', '-c', `${COUNT}exit 7`], {
      limit: 2,
      rules: [{ onExitCodes: [7], action: 'complete' }],
    });
    expect(result).toMatchObject({ state: 'Complete', exitCode: 7, rule: { index: 0, action: 'complete' } });
    expect(await runsCounted()).toBe(1);
  });

  it('ignore reruns without spending a budget and stops at its cap', async () => {
    const result = await run(['sh', '-c', `${COUNT}exit 9`], {
      backoff: NOW,
      rules: [{ onExitCodes: [9], action: 'ignore' }],
    });
    expect(await runsCounted()).toBe(RETRY_LIMITS.ignoredRuns + 1);
    expect(result.attempts).toHaveLength(RETRY_LIMITS.ignoredRuns + 1);
    expect(result.attempts.filter((a) => a.budget === 'ignored')).toHaveLength(RETRY_LIMITS.ignoredRuns);
    expect(result.attempts.at(-1)?.why).toBe(
      `exit code 9 (rule 0): ignored of ${RETRY_LIMITS.ignoredRuns} spent`,
    );
  });

  it('an infrastructure failure (the container killed from outside) with limit 0 is retried from infraLimit; limit untouched', async () => {
    await world.h.worker();
    const client = world.h.client();
    const { id } = await client.submit(
      busybox(['sh', '-c', `${COUNT}[ "$STEVEDORE_ATTEMPT" = 1 ] && sleep 60; exit 4`], {
        mounts: { '/data': { hostPath: dir, readOnly: false } },
        retry: { limit: 0, infraLimit: 2, backoff: NOW },
      }),
    );
    await untilRunning(client, id, 60_000);
    const docker = testDocker();
    const [container] = await docker.listContainers({ filters: { label: labelFilters(world.h.queue, id) } });
    await docker.getContainer(container?.Id as string).kill();
    const result = await client.waitForResult(id, { timeoutMs: 120_000 });
    // Run 2 exits 4: the job's own failure, with limit 0 its answer.
    expect(result).toMatchObject({ state: 'Complete', exitCode: 4, attempt: 2 });
    expect(result.attempts.map((a) => [a.reason, a.retried, a.budget])).toEqual([
      ['infra', true, 'infra'],
      ['exited', false, null],
    ]);
    expect(result.attempts[1]?.why).toBe('exit code 4: limit of 0 spent');
    expect(await runsCounted()).toBe(2);
  });

  it('a budget over the policy’s cap is refused as invalid, naming field and cap', async () => {
    const config = await world.h.config();
    const policyPath = await writePolicy(dir, {
      ...JSON.parse(await readFile(config.policyPath as string, 'utf8')),
      retry: { maxLimit: 2, maxInfraLimit: 1 },
    });
    await world.h.worker({ ...config, policyPath });
    const client = world.h.client();
    const { id } = await client.submit(busybox(['true'], { retry: { limit: 3, infraLimit: 1 } }));
    const result = await client.waitForResult(id, { timeoutMs: 60_000 });
    expect(result).toMatchObject({ state: 'Failed', reason: 'invalid', containerId: null });
    expect(result.error?.message).toBe(
      "denied by policy: retry.limit 3 is over the policy's cap retry.maxLimit 2",
    );
  });
});
