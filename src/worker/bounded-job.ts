import { Job, type JobJson, Worker } from 'bullmq';
import { jobTextProblem } from '../jobs/spec.js';

/** Why a job's data was not parsed, for the jobs whose text broke a bound (read by admission). */
const unparsed = new WeakMap<Job, string>();

/**
 * A job whose data is parsed only when its text is within the spec's bounds (jobTextProblem).
 * BullMQ parses job data as soon as a worker takes the job, before our processor runs: 6,000,000
 * zeros (12 MB) took JSON.parse 0.5 s and as many empty arrays 3-4 s of blocked event loop (lock
 * renewal, /healthz), and about 100 MB ended the worker. Data over a bound is replaced by `{}`
 * and the reason kept, so admission fails the job as invalid without anything walking it.
 */
class BoundedJob extends Job {
  static override fromJSON<T = unknown, R = unknown, N extends string = string>(
    queue: ConstructorParameters<typeof Job>[0],
    json: JobJson,
    jobId?: string,
  ): Job<T, R, N> {
    const problem = typeof json.data === 'string' ? jobTextProblem(json.data) : null;
    if (problem === null) return Job.fromJSON<T, R, N>(queue, json, jobId);
    const job = Job.fromJSON<T, R, N>(queue, { ...json, data: '{}' }, jobId);
    unparsed.set(job, problem);
    return job;
  }
}

/** A BullMQ worker whose jobs are BoundedJobs. */
export class BoundedWorker<D, R> extends Worker<D, R> {
  protected override get Job(): typeof Job {
    // Job's constructor is generic over its name type; ours passes every type through unchanged.
    return BoundedJob as typeof Job;
  }
}

/** Why the job's data was left unparsed (too big to parse), or undefined when it was parsed. */
export function unparsedDataProblem(job: Job): string | undefined {
  return unparsed.get(job);
}
