import { type Job, UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import type { RuntimeKind } from '../executors/index.js';
import { InvalidSpecError, type SpecIssue } from '../jobs/errors.js';
import { jobIdProblems } from '../jobs/names.js';
import { type JobResult, resultWithoutRun } from '../jobs/result.js';
import { type JobSpec, type JobSpecInput, jobDataProblem, parseJobSpec } from '../jobs/spec.js';
import { deniedMessage } from '../policy/check.js';
import { textVerdict } from './bounded-job.js';
import type { MountPin } from './mount-pins.js';
import type { WorkerPolicy } from './policy-load.js';
import { ForAnotherRuntimeError, routeJob } from './runtime-check.js';
import { checkSignature, type SignatureGate } from './signature-check.js';

export interface AdmissionContext {
  runtime: RuntimeKind;
  queue: string;
  /** Runtimes of the queue's live workers (presence), read only for a job that names another runtime. */
  liveRuntimes: () => Promise<string[]>;
  worker: { host: string; id: string };
  log: Logger;
  /** STEVEDORE_POLICY: what a job may ask for on this worker. */
  policy: WorkerPolicy;
  /** Stores a result for a job that BullMQ fails without a return value. */
  writeSideResult: (result: JobResult) => Promise<void>;
  /** Trusted keys (STEVEDORE_TRUSTED_KEYS): when set, only jobs signed by one of them are admitted. */
  signatures: SignatureGate;
  /** Told of every job refused as invalid, with its result (the worker's events). */
  onInvalid?: (result: JobResult) => void;
  /** The runtime's own rule for mount paths (ContainerRuntime.mountPathProblem): why it cannot take a path literally, or null. */
  mountPathProblem: (path: string) => string | null;
}

/** Every mount path of `spec` that the runtime cannot take literally, named by its field. */
export function mountPathIssues(
  spec: Pick<JobSpec, 'mounts'>,
  problem: (path: string) => string | null,
): SpecIssue[] {
  const issues: SpecIssue[] = [];
  for (const [inside, mount] of Object.entries(spec.mounts)) {
    const ofInside = problem(inside);
    if (ofInside !== null) issues.push({ path: `mounts.${inside}`, message: `container path ${ofInside}` });
    const ofHost = problem(mount.hostPath);
    if (ofHost !== null) issues.push({ path: `mounts.${inside}.hostPath`, message: ofHost });
  }
  return issues;
}

/** What admission reads of BullMQ's job, and the one write it makes (dropping data over the bounds). */
export type AdmissionJob = Pick<Job<JobSpecInput, JobResult>, 'id' | 'data' | 'attemptsMade' | 'updateData'>;

/** A job admitted to run: its spec as it runs, and what its mounts named when they were checked. */
export interface AdmittedJob {
  /** Host paths resolved (the executor binds these real paths, never the ones written). */
  spec: JobSpec;
  pins: MountPin[];
}

/**
 * The job as this worker may run it: its id as the client would take it, its spec valid, for
 * this worker's runtime and within its policy (whose defaults it then carries). A job for a
 * runtime another live worker of the queue runs is handed back (ForAnotherRuntimeError).
 * Anything else is failed for good (UnrecoverableError) with an `invalid` result naming every
 * problem, and never reaches a runtime.
 */
export async function admitJob(job: AdmissionJob, ctx: AdmissionContext): Promise<AdmittedJob> {
  const jobId = job.id as string;
  const reject = async (message: string, data: unknown = job.data): Promise<never> => {
    const result = resultWithoutRun({
      jobId,
      data,
      state: 'Failed',
      reason: 'invalid',
      attempt: job.attemptsMade + 1,
      worker: ctx.worker,
      error: { phase: 'validating', message },
    });
    await ctx.writeSideResult(result);
    ctx.onInvalid?.(result);
    throw new UnrecoverableError(message);
  };
  // A producer other than StevedoreClient may enqueue ids the client would refuse.
  const idProblems = jobIdProblems(jobId, 'queued');
  if (idProblems.length > 0) {
    ctx.log.warn({ problems: idProblems }, 'invalid job id');
    return reject(
      `validating: job id ${JSON.stringify(jobId)} ${idProblems.join(', ')}; submit the job again with an id that has none of these`,
    );
  }
  // Before anything walks the whole job (the signature's canonical JSON, the schema): a job of
  // millions of elements is refused after counting to the limit, and its data is not copied.
  const verdict = textVerdict(job);
  const tooBig = verdict === undefined ? jobDataProblem(job.data) : verdict;
  if (tooBig !== null) {
    ctx.log.warn({ problem: tooBig }, 'job data too big');
    // Kept in Redis, it would be parsed again by every reader of the failed job (the dashboard's
    // lists, getResult): the job fails for good, so its data goes.
    await (job as Pick<Job<unknown>, 'updateData'>).updateData({});
    return reject(new InvalidSpecError([{ path: '', message: tooBig }]).message, {});
  }
  const signed = await checkSignature({ id: jobId, data: job.data }, ctx.signatures, ctx.log);
  if (!signed.ok) return reject(signed.message);
  let spec: JobSpec;
  try {
    spec = parseJobSpec(signed.spec);
  } catch (error) {
    if (!(error instanceof InvalidSpecError)) throw error;
    ctx.log.warn({ issues: error.issues }, 'invalid job spec');
    return reject(error.message);
  }
  if (spec.runtime !== undefined && spec.runtime !== ctx.runtime) {
    const route = routeJob(spec, ctx.runtime, await ctx.liveRuntimes(), ctx.queue);
    if (route.to === 'elsewhere') throw new ForAnotherRuntimeError(route.runtime);
    if (route.to === 'nowhere') {
      ctx.log.warn({ runtime: spec.runtime }, 'no worker on the queue runs the runtime the job asks for');
      return reject(route.error.message);
    }
  }
  const pathIssues = mountPathIssues(spec, ctx.mountPathProblem);
  if (pathIssues.length > 0) {
    ctx.log.warn(
      { issues: pathIssues.map((i) => i.path) },
      `mount paths the ${ctx.runtime} runtime cannot take`,
    );
    return reject(new InvalidSpecError(pathIssues).message);
  }
  // Before anything is pulled, loaded, opened or created.
  const checked = await ctx.policy.check(spec);
  if (checked.denials.length > 0) {
    // Denials name fields, paths, images and modes, never env values.
    ctx.log.warn(
      { denials: checked.denials.map((d) => d.message), policy: ctx.policy.source },
      'job denied by policy',
    );
    return reject(deniedMessage(checked.denials));
  }
  return { spec: checked.spec, pins: checked.pins };
}
