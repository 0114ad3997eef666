import { describe, expect, it } from 'vitest';
import { labelFilters } from '../../src/jobs/names.js';
import { stevedore } from '../helpers/cli.js';
import { testDocker } from '../helpers/docker.js';
import { removeHoldersOf } from '../helpers/holders.js';
import { busybox, untilRunning, useTestWorld } from '../helpers/stevedore.js';

describe('the history of a job whose worker was lost', () => {
  const world = useTestWorld();

  it('lists the run of a SIGKILLed worker whose container was gone before the next worker came', async () => {
    const { h } = world;
    try {
      const config = await h.config({ lockDurationMs: 1_500 });
      const doomed = stevedore(['worker'], {
        env: {
          REDIS_URL: world.redis.url,
          STEVEDORE_QUEUE: h.queue,
          STEVEDORE_STATE_DIR: config.stateDir,
          STEVEDORE_LOG_DIR: config.logDir,
          STEVEDORE_POLICY: config.policyPath as string,
          STEVEDORE_LOCK_DURATION_MS: '1500',
          STEVEDORE_WORKER_ID: 'doomed',
        },
      });
      const client = h.client();
      const { id } = await client.submit(busybox(['sh', '-c', 'echo run; sleep 2'], { stopGraceSeconds: 0 }));
      await untilRunning(client, id, 30_000);
      doomed.kill('SIGKILL');
      await doomed;
      const docker = testDocker();
      const left = await docker.listContainers({ all: true, filters: { label: labelFilters(h.queue, id) } });
      expect(left).toHaveLength(1);
      for (const c of left) await docker.getContainer(c.Id).remove({ force: true });

      const next = await h.worker({ lockDurationMs: 1_500, logDir: config.logDir });
      const result = await client.waitForResult(id, { timeoutMs: 30_000 });
      expect(result).toMatchObject({ state: 'Complete', exitCode: 0, adopted: false, attempt: 1 });
      expect(result.attempts).toMatchObject([
        {
          attempt: 1,
          worker: 'doomed',
          state: 'Failed',
          reason: 'infra',
          error: 'worker lost while running; its container was gone, so the job ran again',
          retried: true,
          budget: null,
        },
        { attempt: 1, worker: next.id, state: 'Complete', reason: 'exited', error: null },
      ]);
    } finally {
      await h.close();
      await removeHoldersOf(testDocker(), h.queue);
    }
  });
});
