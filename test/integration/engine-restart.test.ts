import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LABELS } from '../../src/jobs/names.js';
import { useLeakCheck } from '../helpers/leaks.js';
import { TestRedis } from '../helpers/redis.js';
import { ScratchEngine } from '../helpers/scratch-engine.js';
import { busybox, Harness, until, untilRunning } from '../helpers/stevedore.js';

const LINES = 40;
const expected = Array.from({ length: LINES }, (_, i) => `line-${i + 1}\n`).join('');

/** The job containers on the engine (its namespace holders live until the worker closes). */
const jobContainers = (engine: ScratchEngine) =>
  engine.docker.listContainers({ all: true, filters: { label: [LABELS.jobId] } });

/** The docker daemon restarts under a running job, on a private engine so no other test is touched. */
// Its own set-up, not useTestWorld: each worker must close before its scratch engine does, and
// useTestWorld would close it after this file's afterEach had stopped the engine.
describe('docker daemon restarted while a job runs', () => {
  useLeakCheck();
  let redis: TestRedis;
  const cleanup: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    redis = await TestRedis.start();
  });
  afterAll(async () => {
    await redis.close();
  });
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function world(liveRestore: boolean) {
    const engine = await ScratchEngine.start({ liveRestore });
    cleanup.push(() => engine.close());
    const h = new Harness(redis);
    cleanup.push(() => h.close());
    return { engine, h };
  }

  it('with live-restore the container survives: taken back, one run, byte-exact output', async () => {
    const { engine, h } = await world(true);
    await h.worker({ logDriver: 'local' }, { runtimeOptions: { docker: { client: engine.docker } } });
    const client = h.client();
    const { id } = await client.submit(
      busybox(['sh', '-c', `i=1; while [ $i -le ${LINES} ]; do echo line-$i; i=$((i+1)); sleep 0.1; done`]),
    );
    await untilRunning(client, id);
    await new Promise((r) => setTimeout(r, 500));
    await engine.restart({ liveRestore: true });
    const result = await client.waitForResult(id, { timeoutMs: 60_000 });
    expect(result, JSON.stringify(result.error)).toMatchObject({
      state: 'Complete',
      exitCode: 0,
      adopted: true,
      attempt: 1,
    });
    expect(await readFile(result.stdout.path as string, 'utf8')).toBe(expected);
    const events = await readFile(join(dirname(result.stdout.path as string), 'events.log'), 'utf8');
    expect(events).toMatch(/ engine-reattached \{"at":"[^"]+","running":true,"replayed":true\}/);
    await until(async () => (await jobContainers(engine)).length === 0);
  });

  it('without live-restore the engine stops the container: attempt fails as infra, the retry completes', async () => {
    const { engine, h } = await world(false);
    const marks = await mkdtemp(join(tmpdir(), 'stevedore-engine-restart-'));
    cleanup.push(() => rm(marks, { recursive: true, force: true }));
    await h.worker({}, { runtimeOptions: { docker: { client: engine.docker } } });
    const client = h.client();
    // The first run leaves a mark and waits (exit 5 on SIGTERM); the rerun sees the mark and ends at once.
    const script =
      "if [ -e /marks/first ]; then echo rerun; exit 0; fi; touch /marks/first; trap 'exit 5' TERM; echo first; while true; do sleep 0.1; done";
    const { id } = await client.submit(
      busybox(['sh', '-c', script], { mounts: { '/marks': { hostPath: marks, readOnly: false } } }),
      { attempts: 3, backoff: 3_000 },
    );
    await untilRunning(client, id);
    await engine.restart({ liveRestore: false });
    const result = await client.waitForResult(id, { timeoutMs: 60_000 });
    expect(result, JSON.stringify(result.error)).toMatchObject({
      state: 'Complete',
      exitCode: 0,
      attempt: 2,
    });
    expect(result.stdout.tail).toBe('rerun\n');
    const firstRun = join(dirname(dirname(result.stdout.path as string)), '1', 'events.log');
    const events = await readFile(firstRun, 'utf8');
    expect(events).toMatch(/ result \{"state":"Failed","reason":"infra"/);
    expect(events).toMatch(/stopped from outside Stevedore \(signal 15, exit 5\)/);
    await until(async () => (await jobContainers(engine)).length === 0, 30_000);
  });
});
