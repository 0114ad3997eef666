import { type GateVerdict, queueSecondsOf, queueTimeoutResult } from '../jobs/queue-timeout.js';
import type { JobResult } from '../jobs/result.js';
import type { JobSpec } from '../jobs/spec.js';
import type { JobRecords } from './job-records.js';

/** What the gate reads of BullMQ's job. */
export interface GatedJob {
  id?: string;
  data: unknown;
  attemptsMade: number;
  /** When it was submitted (ms since epoch, the producer's clock). */
  timestamp: number;
}

/**
 * A worker's side of the queue timeout (jobs/queue-timeout.ts), asked holding the job's lock:
 * before admission with no spec yet (`check`: timed out already, or past a registered
 * deadline?), and once admitted with the spec as the policy left it (`admit`). Returns the
 * job's result when its queue timeout ended it, else null; a sweep's result is kept as it was.
 */
export async function queueTimedOut(
  job: GatedJob,
  records: Pick<JobRecords, 'queueGate' | 'readSideResult' | 'writeSideResult'>,
  /** The job's lock token: the result is written only while it holds (fenced-result.ts). */
  token: string | undefined,
  spec?: JobSpec,
): Promise<{ result: JobResult | null; verdict: GateVerdict }> {
  const jobId = job.id as string;
  const seconds = spec ? spec.timeouts?.queueSeconds : undefined;
  const fallback = seconds === undefined ? null : job.timestamp + seconds * 1000;
  const verdict = await records.queueGate(jobId, spec ? 'admit' : 'check', fallback);
  if (verdict !== 'timed-out') return { result: null, verdict };
  const swept = await records.readSideResult(jobId);
  if (swept?.reason === 'timeout' && swept.timeout?.name === 'queueSeconds')
    return { result: swept, verdict };
  const result = queueTimeoutResult(
    jobId,
    job.data,
    job.attemptsMade,
    seconds ?? queueSecondsOf(job.data) ?? 0,
  );
  await records.writeSideResult(result, token);
  return { result, verdict };
}
