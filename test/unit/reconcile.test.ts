import { type Logger, pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { RuntimeContainer } from '../../src/executors/index.js';
import { ownershipOf, recordedContainers } from '../../src/worker/recovery/ownership.js';
import {
  findAdoptable,
  leftoverVerdict,
  type RecoveryRuntime,
  reconcileContainers,
} from '../../src/worker/recovery/reconcile.js';

const old = { ageMs: 120_000, graceMs: 30_000, ownJob: false, lockHeld: false };

describe('leftover container verdicts', () => {
  it.each([
    [{ ...old, state: null }, /unknown/],
    [{ ...old, state: 'completed' }, /finished \(completed\)/],
    [{ ...old, state: 'failed' }, /finished \(failed\)/],
    [
      { ...old, state: 'active', containerState: 'created' },
      /never started and its job is active on no worker/,
    ],
    [{ ...old, state: 'waiting', containerState: 'created' }, /waiting on no worker/],
  ])('removes %j', (input, reason) => {
    expect(leftoverVerdict(input)).toMatch(reason);
  });

  it.each([
    { ...old, state: 'active', lockHeld: true },
    { ...old, state: 'completed', ageMs: 1_000 },
    { ...old, state: null, ownJob: true },
    { ...old, state: 'active', containerState: 'running' },
    { ...old, state: 'waiting', containerState: 'exited' },
  ])('keeps %j', (input) => {
    expect(leftoverVerdict(input)).toBeNull();
  });
});

/** A runtime stub whose removals fail for the containers named in `failing`. */
function stubRuntime(
  containers: RuntimeContainer[],
  failing: Set<string>,
): RecoveryRuntime & { removed: string[] } {
  const removed: string[] = [];
  return {
    removed,
    listContainers: async (labels) =>
      containers.filter((c) => Object.entries(labels).every(([k, v]) => c.labels[k] === v)),
    containerState: async (id) => containers.find((c) => c.id === id)?.state ?? null,
    removeContainer: async (id) => {
      if (failing.has(id)) throw new Error('engine said no');
      removed.push(id);
    },
  };
}

function capturingLogger(): {
  logger: Logger;
  lines: () => { level: number; msg: string; containerId?: string }[];
} {
  const out: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => out.push(line) });
  return { logger, lines: () => out.map((l) => JSON.parse(l)) };
}

const OURS = 'aaaaaaaaaaaa';
const THEIRS = 'bbbbbbbbbbbb';

const leftoverOf = (
  id: string,
  jobId: string,
  attempt = '1',
  state = 'exited',
  deployment: string | null = OURS,
): RuntimeContainer => ({
  id,
  labels: {
    'stevedore.queue': 'q',
    'stevedore.job-id': jobId,
    'stevedore.attempt': attempt,
    ...(deployment === null ? {} : { 'stevedore.deployment': deployment }),
  },
  state,
  createdAt: Date.now() - 120_000,
});

const reconcileWith = (
  runtime: RecoveryRuntime,
  logger: Logger,
  jobs: Record<string, { state: string; progress?: unknown }> = {},
) =>
  reconcileContainers({
    runtime,
    queue: {
      name: 'q',
      getJob: async (id: string) => {
        const job = jobs[id];
        return job ? ({ progress: job.progress, getState: async () => job.state } as never) : undefined;
      },
    },
    redis: { exists: async () => 0 },
    prefix: 'bull',
    deployment: OURS,
    graceMs: 30_000,
    logger,
    ownJobs: new Set(),
  });

describe('removing leftovers through the runtime', () => {
  it('logs "removed" only after a removal succeeded; a failed one is a warning and the rest go on', async () => {
    const runtime = stubRuntime(
      [leftoverOf('bad', 'gone-1'), leftoverOf('good', 'gone-2')],
      new Set(['bad']),
    );
    const { logger, lines } = capturingLogger();
    const removed = await reconcileWith(runtime, logger);
    expect(removed).toEqual(['good']);
    const about = (id: string) => lines().filter((l) => l.containerId === id);
    expect(about('bad').map((l) => [l.level, l.msg])).toEqual([
      [40, expect.stringMatching(/^could not remove a leftover container; it is tried again/)],
    ]);
    expect(about('good').map((l) => l.msg)).toEqual(['removed a leftover container']);
  });

  it('before adoption, an older container that cannot be removed is a warning, not "removed"', async () => {
    const runtime = stubRuntime(
      [leftoverOf('old', 'j', '1'), leftoverOf('latest', 'j', '2', 'running')],
      new Set(['old']),
    );
    const { logger, lines } = capturingLogger();
    const run = { queue: 'q', jobId: 'j', attempt: 2, deployment: OURS, recorded: new Set<string>() };
    expect(await findAdoptable(runtime, run, logger)).toEqual({
      containerId: 'latest',
      worker: 'unknown',
    });
    expect(lines().map((l) => [l.level, l.msg])).toEqual([
      [40, expect.stringMatching(/^could not remove an older container of this job/)],
    ]);
  });
});

describe("only our own deployment's containers", () => {
  it.each([
    [{ 'stevedore.deployment': OURS }, [], 'ours'],
    [{ 'stevedore.deployment': THEIRS }, ['c'], 'another deployment'],
    [{}, ['c'], 'legacy, ours'],
    [{}, ['other'], 'legacy, unproven'],
  ] as const)('labels %j, recorded %j: %s', (labels, recorded, expected) => {
    expect(ownershipOf({ id: 'c', labels }, OURS, new Set(recorded))).toBe(expected);
  });

  it("reads the recorded container ids from a job's progress and result", () => {
    expect(recordedContainers({ progress: { containerId: 'a' }, returnvalue: { containerId: 'b' } })).toEqual(
      new Set(['a', 'b']),
    );
    expect(recordedContainers({ progress: 7, returnvalue: null })).toEqual(new Set());
    expect(recordedContainers(undefined)).toEqual(new Set());
  });

  it("reconcile removes ours and a proven legacy one; another deployment's and an unproven legacy one stay", async () => {
    const runtime = stubRuntime(
      [
        leftoverOf('mine', 'gone-1'),
        leftoverOf('theirs', 'gone-2', '1', 'running', THEIRS),
        leftoverOf('legacy-unknown', 'gone-3', '1', 'running', null),
        leftoverOf('legacy-other', 'done-1', '1', 'running', null),
        leftoverOf('legacy-mine', 'done-2', '1', 'exited', null),
      ],
      new Set(),
    );
    const removed = await reconcileWith(runtime, pino({ level: 'silent' }), {
      'done-1': { state: 'completed', progress: { containerId: 'someone-elses' } },
      'done-2': { state: 'completed', progress: { containerId: 'legacy-mine' } },
    });
    expect(removed.sort()).toEqual(['legacy-mine', 'mine']);
  });

  it("adoption never takes or removes another deployment's container, nor an unproven legacy one", async () => {
    const runtime = stubRuntime(
      [leftoverOf('theirs', 'j', '1', 'running', THEIRS), leftoverOf('legacy', 'j', '1', 'running', null)],
      new Set(),
    );
    const logger = pino({ level: 'silent' });
    const run = { queue: 'q', jobId: 'j', attempt: 1, deployment: OURS, recorded: new Set<string>() };
    expect(await findAdoptable(runtime, run, logger)).toBeNull();
    expect(await findAdoptable(runtime, run, logger, false)).toBeNull();
    expect(runtime.removed).toEqual([]);
    expect(await findAdoptable(runtime, { ...run, recorded: new Set(['legacy']) }, logger)).toEqual({
      containerId: 'legacy',
      worker: 'unknown',
    });
  });
});
