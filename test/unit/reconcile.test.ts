import { type Logger, pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { RuntimeContainer } from '../../src/executors/index.js';
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

const leftoverOf = (id: string, jobId: string, attempt = '1', state = 'exited'): RuntimeContainer => ({
  id,
  labels: { 'stevedore.queue': 'q', 'stevedore.job-id': jobId, 'stevedore.attempt': attempt },
  state,
  createdAt: Date.now() - 120_000,
});

describe('removing leftovers through the runtime', () => {
  it('logs "removed" only after a removal succeeded; a failed one is a warning and the rest go on', async () => {
    const runtime = stubRuntime(
      [leftoverOf('bad', 'gone-1'), leftoverOf('good', 'gone-2')],
      new Set(['bad']),
    );
    const { logger, lines } = capturingLogger();
    const removed = await reconcileContainers({
      runtime,
      queue: { name: 'q', getJob: async () => undefined },
      redis: { exists: async () => 0 },
      prefix: 'bull',
      graceMs: 30_000,
      logger,
      ownJobs: new Set(),
    });
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
    expect(await findAdoptable(runtime, 'q', 'j', 2, logger)).toEqual({
      containerId: 'latest',
      worker: 'unknown',
    });
    expect(lines().map((l) => [l.level, l.msg])).toEqual([
      [40, expect.stringMatching(/^could not remove an older container of this job/)],
    ]);
  });
});
