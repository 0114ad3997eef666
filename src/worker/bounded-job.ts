import { Job, type JobJson, Worker } from 'bullmq';
import { jobTextProblem } from '../jobs/spec.js';

/** The verdict of jobTextProblem on each job's text (null: within bounds), read by admission. */
const verdicts = new WeakMap<object, string | null>();

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
    if (typeof json.data !== 'string') return Job.fromJSON<T, R, N>(queue, json, jobId);
    const problem = jobTextProblem(json.data);
    const job = Job.fromJSON<T, R, N>(queue, problem === null ? json : { ...json, data: '{}' }, jobId);
    verdicts.set(job, problem);
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

/**
 * What the bounds said of the job's text before it was parsed: why its data was left unparsed,
 * null when it was within them, undefined when the job did not come through a BoundedWorker.
 */
export function textVerdict(job: object): string | null | undefined {
  return verdicts.get(job);
}
