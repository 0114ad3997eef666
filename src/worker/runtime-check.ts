import type { RuntimeKind } from '../executors/index.js';
import { InvalidSpecError } from '../jobs/errors.js';
import type { JobSpec } from '../jobs/spec.js';

/**
 * A job that names a runtime must run on it: on a worker of another runtime it fails as invalid
 * (never retried here, never run on the wrong runtime). A job that names none runs on the worker's.
 */
export function checkJobRuntime(spec: Pick<JobSpec, 'runtime'>, workerRuntime: RuntimeKind): void {
  if (spec.runtime === undefined || spec.runtime === workerRuntime) return;
  throw new InvalidSpecError([
    {
      path: 'runtime',
      message: `asks for runtime ${JSON.stringify(spec.runtime)}, but this worker runs ${JSON.stringify(workerRuntime)}: submit it to a queue served by ${spec.runtime} workers, or drop the field`,
    },
  ]);
}
