import type { JobStatus } from '../status.js';
import { GatewayError } from './session.js';

/** Phases of a run before its container runs: nothing to exec into yet. */
const STARTING = new Set(['queued', 'admitted', 'loading-image', 'creating', 'starting']);
const GATEWAY_DOC = 'docs/gateway.md';

/**
 * Why a job has no gateway entry in Redis, from its status: it is not running (yet, or any
 * more), or it runs on a worker that serves no gateway. One message per case, saying what to do.
 */
export function whyNoGateway(jobId: string, status: JobStatus): GatewayError {
  const { state, progress } = status;
  if (state === 'completed' || state === 'failed') {
    return new GatewayError(
      `job ${jobId} has finished: exec and port-forward reach running jobs only (its output: stevedore logs ${jobId})`,
      'not-running',
    );
  }
  if (state !== 'active') {
    const why = status.waiting ? `: ${status.waiting.message}` : '';
    return new GatewayError(
      `job ${jobId} is not running yet (it is ${state}${why}); try again once it runs (stevedore status ${jobId})`,
      'not-running',
    );
  }
  const phase = progress?.phase ?? 'admitted';
  if (STARTING.has(phase)) {
    return new GatewayError(
      `job ${jobId} is starting (phase ${phase}), its container does not run yet; try again in a moment`,
      'not-running',
    );
  }
  if (phase !== 'running') {
    return new GatewayError(
      `job ${jobId} is ending (phase ${phase}): exec and port-forward reach running jobs only`,
      'not-running',
    );
  }
  const worker = progress?.worker ? `worker ${progress.worker}` : 'its worker';
  return new GatewayError(
    `job ${jobId} runs on ${worker}, which serves no gateway: start that worker with STEVEDORE_GATEWAY=host:port (see ${GATEWAY_DOC}), or wait a second if the job has only just started`,
    'gateway-off',
  );
}

/** Refusals that mean the entry read was stale: the job moved or restarted, so reading it again may find it. */
export const STALE_ENTRY_CODES: ReadonlySet<string> = new Set(['moved', 'other-attempt', 'bad-secret']);
