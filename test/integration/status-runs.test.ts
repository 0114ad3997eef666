import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { StevedoreClient } from '../../src/jobs/client.js';
import type { JobStatus } from '../../src/jobs/status.js';
import { stevedore } from '../helpers/cli.js';
import { busybox, until, useTestWorld, writePolicy } from '../helpers/stevedore.js';

// `stevedore status` and getStatus count runs and budgets as the worker does (from the run
// history and the retry rules), not from BullMQ's attempts counter: mid-way and at the end.
const world = useTestWorld();

/** No wait between runs: the test counts runs, not delays. */
const NOW = { type: 'fixed', delaySeconds: 0 } as const;

/**
 * Exits 75 on its first two runs and 0 on its third; run 2 holds until the test creates
 * /data/go, so its status can be read while it is under way.
 */
const HELD_RETRIES = [
  'sh',
  '-c',
  'n=$(cat /data/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/count; ' +
    'if [ $n -eq 2 ]; then while [ ! -e /data/go ]; do sleep 0.05; done; fi; ' +
    '[ $n -ge 3 ] && exit 0; exit 75',
];

const LIMIT = "from limit (the job's own failures)";
const INFRA = 'from infra (infrastructure failures)';

describe('status counts runs and retry budgets', () => {
  let dir = '';
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stevedore-status-runs-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** `stevedore status <id>` in a real process: its JSON, and its stderr lines (execa drops the last newline). */
  const statusCli = async (id: string) => {
    const cli = await stevedore(['status', id], {
      env: { REDIS_URL: world.redis.url, STEVEDORE_QUEUE: world.h.queue },
    });
    expect(cli.exitCode).toBe(0);
    const json = JSON.parse(String(cli.stdout)) as { finished: boolean; runs: JobStatus['runs'] };
    return { json, stderr: String(cli.stderr).split('\n') };
  };

  const untilStatus = async (client: StevedoreClient, id: string, ok: (s: JobStatus) => boolean) => {
    let last: JobStatus | undefined;
    try {
      return await until(async () => {
        last = await client.getStatus(id);
        return ok(last) && last;
      }, 60_000);
    } catch (error) {
      throw new Error(`job ${id}: status never came; last: ${JSON.stringify(last)}`, { cause: error });
    }
  };

  it('a job that exits 75 under a retry rule: run 1 next, run 2 under way with one rerun of limit spent, ended after run 3', async () => {
    const client = world.h.client();
    // BullMQ's own count for this job is attempts 4 (infraLimit + 1): the old "attempt 3 of 4".
    const { id } = await client.submit(
      busybox(HELD_RETRIES, {
        mounts: { '/data': { hostPath: dir, readOnly: false } },
        retry: { limit: 2, infraLimit: 3, backoff: NOW, rules: [{ onExitCodes: [75], action: 'retry' }] },
      }),
    );

    // Before any worker: from the spec.
    const before = await client.getStatus(id);
    expect(before.runs).toEqual({
      run: 1,
      stage: 'next',
      budgets: [
        { budget: 'limit', granted: 2, spent: 0, left: 2 },
        { budget: 'infra', granted: 3, spent: 0, left: 3 },
      ],
      message: `run 1 next; reruns left: 2 of 2 ${LIMIT}, 3 of 3 ${INFRA}`,
    });

    await world.h.worker();
    // Mid-way: run 2 runs, held; run 1's exit 75 spent one rerun of limit.
    const midway = await untilStatus(
      client,
      id,
      (s) => s.state === 'active' && s.progress?.attempt === 2 && s.progress.phase === 'running',
    );
    expect(midway.runs).toEqual({
      run: 2,
      stage: 'under-way',
      budgets: [
        { budget: 'limit', granted: 2, spent: 1, left: 1 },
        { budget: 'infra', granted: 3, spent: 0, left: 3 },
      ],
      message: `run 2 under way; reruns left: 1 of 2 ${LIMIT}, 3 of 3 ${INFRA}`,
    });
    const cliMidway = await statusCli(id);
    expect(cliMidway.json).toMatchObject({ finished: false, runs: midway.runs });
    expect(cliMidway.stderr[0]).toBe(
      `job ${id}: run 2 under way; reruns left: 1 of 2 ${LIMIT}, 3 of 3 ${INFRA}`,
    );

    await writeFile(join(dir, 'go'), '');
    const result = await client.waitForResult(id, { timeoutMs: 60_000 });
    expect(result).toMatchObject({ state: 'Complete', exitCode: 0, attempt: 3 });
    expect(await readFile(join(dir, 'count'), 'utf8')).toBe('3\n');
    expect(result.attempts.map((a) => [a.attempt, a.exitCode, a.budget])).toEqual([
      [1, 75, 'limit'],
      [2, 75, 'limit'],
      [3, 0, null],
    ]);

    // At the end: both reruns of limit spent, the infrastructure's untouched.
    const end = await client.getStatus(id);
    expect(end.runs).toMatchObject({
      run: 3,
      stage: 'last',
      message: `ended after run 3; reruns left: 0 of 2 ${LIMIT}, 3 of 3 ${INFRA}`,
    });
    const cliEnd = await statusCli(id);
    expect(cliEnd.json).toMatchObject({ finished: true, runs: end.runs });
    expect(cliEnd.stderr).toEqual([
      `job ${id}: ended after run 3; reruns left: 0 of 2 ${LIMIT}, 3 of 3 ${INFRA}`,
    ]);
  });

  it("an infrastructure budget the worker's policy caps is counted as the worker counts it, once a worker has the job", async () => {
    const config = await world.h.config();
    const policyPath = await writePolicy(dir, {
      ...JSON.parse(await readFile(config.policyPath as string, 'utf8')),
      retry: { maxInfraLimit: 3 },
    });
    const client = world.h.client();
    // `attempts: 8` of old: seven infrastructure reruns, which this worker's policy lowers to three.
    const { id } = await client.submit(busybox(['true']), { attempts: 8 });
    expect((await client.getStatus(id)).runs.message).toBe(
      `run 1 next; reruns left: none ${LIMIT}, 7 of 7 ${INFRA}`,
    );
    await world.h.worker({ ...config, policyPath });
    expect(await client.waitForResult(id, { timeoutMs: 60_000 })).toMatchObject({
      state: 'Complete',
      attempt: 1,
    });
    expect((await client.getStatus(id)).runs.message).toBe(
      `ended after run 1; reruns left: none ${LIMIT}, 3 of 3 ${INFRA}`,
    );
  });
});
