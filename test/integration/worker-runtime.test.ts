import { describe, expect, it } from 'vitest';
import { RuntimeUnavailableError } from '../../src/jobs/errors.js';
import { busybox, useTestWorld } from '../helpers/stevedore.js';

/** The worker runs its jobs on the runtime it is told to, or not at all: never silently on another. */
describe("the worker's runtime", () => {
  const world = useTestWorld();

  it('a worker told to run singularity with a program that is not there fails at start saying what to do', async () => {
    const started = world.h.worker({
      runtime: 'singularity',
      singularity: { bin: '/nonexistent/apptainer' },
    });
    await expect(started).rejects.toBeInstanceOf(RuntimeUnavailableError);
    await expect(started).rejects.toThrow(
      /^runtime singularity is not available: \/nonexistent\/apptainer --version failed .*install Apptainer.*STEVEDORE_SINGULARITY_BIN/,
    );
    expect(world.h.workers).toEqual([]);
  });

  it('a job asking for a runtime no worker on the queue runs fails as invalid, with no container', async () => {
    await world.h.worker();
    const client = world.h.client();
    const { id } = await client.submit(busybox(['true'], { runtime: 'singularity' }));
    const result = await client.waitForResult(id, { timeoutMs: 20_000 });
    expect(result).toMatchObject({
      state: 'Failed',
      reason: 'invalid',
      containerId: null,
      error: {
        phase: 'validating',
        message: expect.stringMatching(
          /runtime: asks for runtime "singularity", but no live worker on queue "[^"]+" runs it \(they run docker\): start a worker there with STEVEDORE_RUNTIME=singularity/,
        ),
      },
    });
  });
});
