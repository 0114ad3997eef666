import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { labelFilters } from '../../src/jobs/names.js';
import { stevedore } from '../helpers/cli.js';
import { testDocker } from '../helpers/docker.js';
import { watchCreates } from '../helpers/events.js';
import { removeHoldersOf } from '../helpers/holders.js';
import { busybox, until, untilRunning, useTestWorld } from '../helpers/stevedore.js';

const LINES = 30;
const expected = Array.from({ length: LINES }, (_, i) => `line-${i + 1}\n`).join('');
const counting = (delay: string) =>
  busybox(['sh', '-c', `i=1; while [ $i -le ${LINES} ]; do echo line-$i; i=$((i+1)); sleep ${delay}; done`], {
    stopGraceSeconds: 0,
  });

describe('adoption instead of re-running', () => {
  const world = useTestWorld();

  it('a detached container is adopted by the next worker: one run, byte-exact output', async () => {
    const { h } = world;
    const creates = await watchCreates(testDocker(), labelFilters(h.queue));
    // Both workers share the host's log directory, as two workers on one host do.
    const logDir = (await h.config()).logDir;
    const first = await h.worker({ onShutdown: 'detach', logDriver: 'local', logDir });
    const client = h.client();
    const { id } = await client.submit(counting('0.1'));
    await untilRunning(client, id);
    await new Promise((r) => setTimeout(r, 800));
    await first.close();
    expect(await client.getResult(id)).toBeNull();
    await new Promise((r) => setTimeout(r, 500)); // output while nobody is attached
    await h.worker({ logDriver: 'local', logDir });
    const result = await client.waitForResult(id, { timeoutMs: 30_000 });
    expect(result).toMatchObject({ state: 'Complete', exitCode: 0, adopted: true, attempt: 1 });
    expect(result.attempts).toHaveLength(2);
    expect(await readFile(result.stdout.path as string, 'utf8')).toBe(expected);
    expect(result.stdout.bytes).toBe(expected.length);
    expect(await creates.stop()).toHaveLength(1);
    const events = await readFile(join(dirname(result.stdout.path as string), 'events.log'), 'utf8');
    expect(events, events).toMatch(/ detaching /);
    expect(events).toMatch(/ adopted \{"containerId":/);
  });

  it('a container that exited while no worker was attached is collected, not re-run', async () => {
    const { h } = world;
    const creates = await watchCreates(testDocker(), labelFilters(h.queue));
    const first = await h.worker({ onShutdown: 'detach', logDriver: 'local' });
    const client = h.client();
    const { id } = await client.submit(
      busybox(['sh', '-c', 'echo before; sleep 1; echo after; exit 5'], { stopGraceSeconds: 0 }),
    );
    await untilRunning(client, id);
    await first.close();
    // It exits while no worker is there: wait for the engine to say so.
    const ofJob = {
      all: true,
      filters: { label: [`stevedore.queue=${h.queue}`, `stevedore.job-id=${id}`] },
    };
    await until(async () => (await testDocker().listContainers(ofJob))[0]?.State === 'exited', 15_000);
    await h.worker({ logDriver: 'local' });
    const result = await client.waitForResult(id, { timeoutMs: 30_000 });
    expect(result).toMatchObject({ state: 'Complete', exitCode: 5, adopted: true });
    expect(await readFile(result.stdout.path as string, 'utf8')).toBe('before\nafter\n');
    expect(await creates.stop()).toHaveLength(1);
  });

  it('after a worker process is SIGKILLed, the next worker adopts its running container', async () => {
    const { h } = world;
    try {
      const creates = await watchCreates(testDocker(), labelFilters(h.queue));
      const config = await h.config({ lockDurationMs: 1_500, logDriver: 'local' });
      const doomed = stevedore(['worker'], {
        env: {
          REDIS_URL: world.redis.url,
          STEVEDORE_QUEUE: h.queue,
          STEVEDORE_STATE_DIR: config.stateDir,
          STEVEDORE_LOG_DIR: config.logDir,
          STEVEDORE_POLICY: config.policyPath as string,
          STEVEDORE_LOCK_DURATION_MS: '1500',
          STEVEDORE_LOG_DRIVER: 'local',
          STEVEDORE_WORKER_ID: 'doomed',
        },
      });
      const client = h.client();
      const { id } = await client.submit(counting('0.15'));
      await untilRunning(client, id, 30_000);
      await new Promise((r) => setTimeout(r, 700));
      doomed.kill('SIGKILL');
      await doomed;
      await h.worker({ lockDurationMs: 1_500, logDriver: 'local', logDir: config.logDir });
      const result = await client.waitForResult(id, { timeoutMs: 30_000 });
      expect(result).toMatchObject({ state: 'Complete', exitCode: 0, adopted: true });
      expect(result.attempts[0]?.worker).toBe('doomed');
      expect(await readFile(result.stdout.path as string, 'utf8')).toBe(expected);
      expect(await creates.stop()).toHaveLength(1);
    } finally {
      await h.close();
      await removeHoldersOf(testDocker(), h.queue);
    }
  });
});
