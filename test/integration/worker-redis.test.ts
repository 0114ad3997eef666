import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { StevedoreClient } from '../../src/jobs/client.js';
import { bullmqKeys } from '../../src/jobs/keys.js';
import { labelFilters } from '../../src/jobs/names.js';
import { loadConfig } from '../../src/worker/config.js';
import { startWorker } from '../../src/worker/worker.js';
import { stevedore } from '../helpers/cli.js';
import { testDocker } from '../helpers/docker.js';
import { TestRedis } from '../helpers/redis.js';
import { busybox, Harness, testPolicy, testQueue, until, writePolicy } from '../helpers/stevedore.js';

describe('worker and Redis', () => {
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
    const url = worker.redisUrl;
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

  it('on a lost lock stops the local container, so a job never has two live containers', async () => {
    const redis = await TestRedis.start();
    cleanup.push(() => redis.close());
    const h = new Harness(redis);
    cleanup.push(() => h.close());
    await h.worker({ lockDurationMs: 2_000 });
    const client = h.client();
    const { id } = await client.submit(busybox(['sleep', '60'], { stopGraceSeconds: 0 }));
    const docker = testDocker();
    const running = () => docker.listContainers({ filters: { label: labelFilters(h.queue, id) } });
    const first = await until(async () => (await running())[0]?.Id, 10_000);
    // Take the lock away, as another worker's stalled-job recovery would.
    const raw = new Redis(redis.url);
    await raw.del(bullmqKeys.lock({ prefix: 'bull', queue: h.queue }, id));
    await raw.quit();
    // The worker stops its container, and no second one runs meanwhile.
    await until(async () => {
      const live = await running();
      expect(live.length).toBeLessThanOrEqual(1);
      return !live.some((c) => c.Id === first);
    }, 10_000);
  });
});
