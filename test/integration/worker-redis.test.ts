import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/worker.js';
import { StevedoreClient } from '../../src/jobs/client.js';
import { bullmqKeys } from '../../src/jobs/keys.js';
import { LABELS, labelFilters } from '../../src/jobs/names.js';
import { startWorker } from '../../src/worker/worker.js';
import { stevedore } from '../helpers/cli.js';
import { testDocker } from '../helpers/docker.js';
import { watchCreates } from '../helpers/events.js';
import { useLeakCheck } from '../helpers/leaks.js';
import { busybox, testPolicy, testQueue, until, useTestWorld, writePolicy } from '../helpers/stevedore.js';

// Its own set-up, not useTestWorld: these workers start an embedded redis-server, or find none.
describe('worker and Redis', () => {
  useLeakCheck();
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it('with no REDIS_URL starts an embedded redis-server, says so, and stops it on close', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'stevedore-embedded-'));
    cleanup.push(() => rm(stateDir, { recursive: true, force: true }));
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const config = {
      ...loadConfig({ STEVEDORE_STATE_DIR: stateDir }),
      queue: testQueue(),
      concurrency: 1,
      policyPath: await writePolicy(stateDir, testPolicy()),
    };
    expect(config.redisUrl).toBeUndefined();
    const worker = await startWorker(config, { logger });
    const url = worker.redis as string; // embedded: a URL (the next line checks it)
    expect(url).toMatch(/^redis:\/\/:[0-9a-f]{64}@127\.0\.0\.1:\d+$/);
    expect((await readFile(join(stateDir, 'redis.url'), 'utf8')).trim()).toBe(url);
    expect(lines.join('')).toContain('started an embedded redis-server');
    const client = new StevedoreClient({ redis: url, queue: config.queue });
    const { id } = await client.submit(busybox(['echo', 'embedded']));
    expect((await client.waitForResult(id, { timeoutMs: 20_000 })).stdout.tail).toBe('embedded\n');
    const admin = new Redis(url);
    expect(await admin.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
    expect(await admin.config('GET', 'bind')).toEqual(['bind', '127.0.0.1']);
    await admin.quit();
    // Anyone without the state directory's files (another local user) is refused.
    const { port: openPort } = new URL(url);
    const stranger = new Redis({
      host: '127.0.0.1',
      port: Number(openPort),
      lazyConnect: true,
      maxRetriesPerRequest: 0,
    });
    stranger.on('error', () => undefined);
    await expect(stranger.ping()).rejects.toThrow(/^NOAUTH Authentication required/);
    stranger.disconnect();
    for (const file of ['redis.url', 'redis.json']) {
      expect((await stat(join(stateDir, file))).mode & 0o777, file).toBe(0o600);
    }
    expect(lines.join('')).not.toContain(new URL(url).password);
    await client.close();
    await worker.close();
    const { port } = new URL(url);
    await expect(
      new Promise((resolve, reject) =>
        connect(Number(port), '127.0.0.1', () => resolve('open')).on('error', reject),
      ),
    ).rejects.toThrow(/ECONNREFUSED/);
  });

  it('fails clearly when redis-server is missing and no REDIS_URL is given', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'stevedore-noredis-'));
    cleanup.push(() => rm(stateDir, { recursive: true, force: true }));
    const r = await stevedore(['worker'], {
      env: { PATH: '/nonexistent', STEVEDORE_STATE_DIR: stateDir, REDIS_URL: '' },
      extendEnv: false,
    });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(
      'redis-server not found on PATH: install it (apt-get install redis-server) or set REDIS_URL',
    );
  });
});

describe('worker and its Redis lock', () => {
  const world = useTestWorld();

  it('on a lost lock leaves its container to the job’s next owner, which adopts it: one container, one run, its exit code', async () => {
    const { h } = world;
    await h.worker({ lockDurationMs: 2_000 });
    const client = h.client();
    const creates = await watchCreates(testDocker(), [`${LABELS.queue}=${h.queue}`]);
    const { id } = await client.submit(busybox(['sh', '-c', 'echo ran; sleep 6; exit 7']));
    const running = () => testDocker().listContainers({ filters: { label: labelFilters(h.queue, id) } });
    const first = await until(async () => (await running())[0]?.Id, 10_000);
    // Take the lock away, as another worker's stalled-job recovery would. The job goes back to
    // the queue (this worker's own stalled check) and is taken again: by the same worker here.
    const raw = new Redis(world.redis.url);
    await raw.del(bullmqKeys.lock({ prefix: 'bull', queue: h.queue }, id));
    await raw.quit();
    const result = await client.waitForResult(id, { timeoutMs: 60_000 });
    expect(result).toMatchObject({ state: 'Complete', exitCode: 7, containerId: first });
    expect(result.attempts.map((a) => a.error)).toContainEqual(expect.stringMatching(/lost the job lock/));
    expect(await creates.stop()).toEqual([first]);
  });
});
