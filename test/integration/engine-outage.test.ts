import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startWorkerEndpoint } from '../../src/server/worker-endpoint.js';
import { useLeakCheck } from '../helpers/leaks.js';
import { TestRedis } from '../helpers/redis.js';
import { ScratchEngine } from '../helpers/scratch-engine.js';
import { busybox, Harness, until } from '../helpers/stevedore.js';

/** Short, so the test sees the worker stop taking jobs soon after its engine goes. */
const OUTAGE_MS = 2_000;

async function readyz(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, text: await res.text() };
}

/** A private engine that is stopped and started again, so no other test's engine is touched. */
// Its own set-up, not useTestWorld: the worker must close before its scratch engine does.
describe('a host whose engine stays away longer than STEVEDORE_ENGINE_OUTAGE_MS', () => {
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

  it('stops taking jobs (/readyz false, the waiting reason says why) and takes them again when it returns, with no restart', async () => {
    const engine = await ScratchEngine.start({ liveRestore: false });
    cleanup.push(() => engine.close());
    const endpoint = await startWorkerEndpoint({ host: '127.0.0.1', port: 0 }, pino({ level: 'silent' }));
    cleanup.push(() => endpoint.close());
    const h = new Harness(redis);
    cleanup.push(() => h.close());
    const worker = await h.worker(
      { engineOutageMs: OUTAGE_MS },
      { runtimeOptions: { docker: { client: engine.docker } }, events: endpoint.events },
    );
    endpoint.attach(worker);
    const url = `http://127.0.0.1:${endpoint.address.port}`;
    const client = h.client();
    const before = await client.submit(busybox(['echo', 'before']));
    expect((await client.waitForResult(before.id, { timeoutMs: 30_000 })).stdout.tail).toBe('before\n');
    expect((await readyz(url)).status).toBe(200);

    await engine.halt();
    const away = await until(async () => {
      const answer = await readyz(url);
      return answer.text.includes('taking no jobs until it answers') && answer;
    });
    expect(away.status).toBe(503);
    expect(away.text).toMatch(
      /worker: the docker engine has not answered for \d+ s \(STEVEDORE_ENGINE_OUTAGE_MS=2000; last: .+\): taking no jobs until it answers; check the engine/,
    );
    expect(worker.whyNoJobs()).toMatch(/^the docker engine has not answered/);

    // A job submitted now waits, and says why, instead of being taken and failed.
    const { id } = await client.submit(busybox(['echo', 'after']), { attempts: 1 });
    const status = await until(async () => {
      const s = await client.getStatus(id);
      return s.waiting?.reason === 'workers-unavailable' && s;
    });
    expect(status.waiting?.message).toMatch(
      new RegExp(
        `^next in line; the one live worker takes no jobs now \\(${worker.id} on .+: the docker engine has not answered`,
      ),
    );
    // It stays untaken while the engine is away (a few of the gate's checks, a quarter of the limit apart).
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    expect((await client.getStatus(id)).state).toBe('waiting');

    await engine.resume({ liveRestore: false });
    await until(async () => (await readyz(url)).status === 200, 30_000);
    const result = await client.waitForResult(id, { timeoutMs: 30_000 });
    expect(result).toMatchObject({ state: 'Complete', exitCode: 0, attempt: 1 });
    expect(result.attempts).toHaveLength(1);
    expect(result.stdout.tail).toBe('after\n');
  });
});
