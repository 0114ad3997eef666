import { describe, expect, it } from 'vitest';
import { routeJob } from '../../src/worker/runtime-check.js';

describe("a job's runtime against the queue's workers", () => {
  it('runs here a job that names none, or the one this worker runs', () => {
    expect(routeJob({}, 'docker', [], 'q')).toEqual({ to: 'here' });
    expect(routeJob({ runtime: 'docker' }, 'docker', ['singularity'], 'q')).toEqual({ to: 'here' });
  });

  it('hands a job to the queue again when another live worker runs the runtime it asks for', () => {
    expect(routeJob({ runtime: 'singularity' }, 'docker', ['docker', 'singularity'], 'q')).toEqual({
      to: 'elsewhere',
      runtime: 'singularity',
    });
  });

  it('fails it as invalid when no live worker runs it, naming what the queue offers and what to do', () => {
    const route = routeJob({ runtime: 'singularity' }, 'docker', ['docker', '', 'docker'], 'jobs');
    expect(route.to).toBe('nowhere');
    if (route.to !== 'nowhere') return;
    expect(route.error.issues).toEqual([
      {
        path: 'runtime',
        message:
          'asks for runtime "singularity", but no live worker on queue "jobs" runs it (they run docker): start a worker there with STEVEDORE_RUNTIME=singularity, submit to a queue whose workers run it, or drop the field',
      },
    ]);
  });
});
