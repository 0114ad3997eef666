import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stevedore } from '../helpers/cli.js';
import { testDocker } from '../helpers/docker.js';
import { removeHoldersOf } from '../helpers/holders.js';
import { busybox, type Harness, until, untilRunning, useTestWorld } from '../helpers/stevedore.js';

/** Short, so the next worker takes the dead worker's job over quickly. */
const LOCK_MS = 1_500;

/**
 * With the default settings (no STEVEDORE_LOG_DRIVER), a worker process that is SIGKILLed while
 * its job runs loses no output: the next worker replays what nobody was attached for.
 */
describe('no output lost with the defaults', () => {
  const world = useTestWorld();

  /** A worker process with the default settings but a short lock; SIGKILLed by the test. */
  async function doomedWorker(h: Harness) {
    const config = await h.config({ lockDurationMs: LOCK_MS });
    const child = stevedore(['worker'], {
      env: {
        REDIS_URL: world.redis.url,
        STEVEDORE_QUEUE: h.queue,
        STEVEDORE_STATE_DIR: config.stateDir,
        STEVEDORE_LOG_DIR: config.logDir,
        STEVEDORE_POLICY: config.policyPath as string,
        STEVEDORE_LOCK_DURATION_MS: String(LOCK_MS),
        STEVEDORE_WORKER_ID: 'doomed',
      },
    });
    return { child, logDir: config.logDir };
  }

  const stdoutFile = (logDir: string, h: Harness, id: string): string =>
    join(logDir, h.queue, id, '1', 'stdout');
  const readText = (path: string): Promise<string> => readFile(path, 'utf8').catch(() => '');

  it('a SIGKILLed worker: the adopting worker has the output written before and after, byte-exact', async () => {
    const { h } = world;
    const ctl = await mkdtemp(join(tmpdir(), 'stevedore-ctl-'));
    try {
      const { child, logDir } = await doomedWorker(h);
      const client = h.client();
      // `echo before; sleep; echo after` with the sleeps replaced by marks, so "after" is
      // certainly written while no worker runs, and the container still runs when adopted.
      const script = [
        'echo before',
        'until [ -e /ctl/go ]; do sleep 0.05; done',
        'echo after; touch /ctl/said-after',
        'until [ -e /ctl/end ]; do sleep 0.05; done',
        'echo end',
      ].join('; ');
      const { id } = await client.submit(
        busybox(['sh', '-c', script], {
          mounts: { '/ctl': { hostPath: ctl, readOnly: false } },
          stopGraceSeconds: 0,
        }),
      );
      await untilRunning(client, id, 30_000);
      await until(async () => (await readText(stdoutFile(logDir, h, id))) === 'before\n');
      child.kill('SIGKILL');
      await child;
      await writeFile(join(ctl, 'go'), '');
      await until(async () => existsSync(join(ctl, 'said-after')));
      await h.worker({ lockDurationMs: LOCK_MS, logDir });
      const events = join(dirname(stdoutFile(logDir, h, id)), 'events.log');
      await until(async () => / adopted /.test(await readText(events)), 30_000);
      await writeFile(join(ctl, 'end'), '');
      const result = await client.waitForResult(id, { timeoutMs: 30_000 });
      expect(result).toMatchObject({ state: 'Complete', exitCode: 0, adopted: true });
      expect(await readFile(result.stdout.path as string, 'utf8')).toBe('before\nafter\nend\n');
      expect(result.stdout.bytes).toBe('before\nafter\nend\n'.length);
    } finally {
      await h.close();
      await removeHoldersOf(testDocker(), h.queue);
      await rm(ctl, { recursive: true, force: true });
    }
  });

  it('a container that exits while no worker runs is collected with its output', async () => {
    const { h } = world;
    const ctl = await mkdtemp(join(tmpdir(), 'stevedore-ctl-'));
    try {
      const { child, logDir } = await doomedWorker(h);
      const client = h.client();
      // It writes the rest and exits only once the test says so, after its worker is dead.
      const { id } = await client.submit(
        busybox(
          [
            'sh',
            '-c',
            'echo before; while [ ! -e /ctl/go ]; do sleep 0.05; done; echo after; echo err >&2; exit 5',
          ],
          { mounts: { '/ctl': { hostPath: ctl, readOnly: true } }, stopGraceSeconds: 0 },
        ),
      );
      await untilRunning(client, id, 30_000);
      const [container] = await testDocker().listContainers({
        filters: { label: [`stevedore.queue=${h.queue}`, `stevedore.job-id=${id}`] },
      });
      expect(container).toBeDefined();
      await until(
        async () => (await readFile(stdoutFile(logDir, h, id), 'utf8').catch(() => '')) === 'before\n',
      );
      child.kill('SIGKILL');
      await child;
      await writeFile(join(ctl, 'go'), '');
      // Exits on its own with no worker attached.
      expect(
        await testDocker()
          .getContainer(container?.Id as string)
          .wait(),
      ).toMatchObject({ StatusCode: 5 });
      await h.worker({ lockDurationMs: LOCK_MS, logDir });
      const result = await client.waitForResult(id, { timeoutMs: 30_000 });
      expect(result).toMatchObject({ state: 'Complete', exitCode: 5, adopted: true });
      expect(await readFile(result.stdout.path as string, 'utf8')).toBe('before\nafter\n');
      expect(await readFile(result.stderr.path as string, 'utf8')).toBe('err\n');
    } finally {
      await h.close();
      await removeHoldersOf(testDocker(), h.queue);
      await rm(ctl, { recursive: true, force: true });
    }
  });
});
