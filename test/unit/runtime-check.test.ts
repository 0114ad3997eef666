import { describe, expect, it } from 'vitest';
import { InvalidSpecError } from '../../src/jobs/errors.js';
import { checkJobRuntime } from '../../src/worker/runtime-check.js';

describe("a job's runtime against the worker's", () => {
  it('passes a job that names none, or the one the worker runs', () => {
    expect(() => checkJobRuntime({}, 'docker')).not.toThrow();
    expect(() => checkJobRuntime({ runtime: 'docker' }, 'docker')).not.toThrow();
  });

  it('fails a job that asks for another runtime as an invalid spec, saying which and what to do', () => {
    let thrown: unknown;
    try {
      checkJobRuntime({ runtime: 'singularity' }, 'docker');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(InvalidSpecError);
    expect((thrown as InvalidSpecError).issues).toEqual([
      {
        path: 'runtime',
        message: expect.stringMatching(
          /asks for runtime "singularity", but this worker runs "docker": submit it to a queue served by singularity workers/,
        ),
      },
    ]);
  });
});
