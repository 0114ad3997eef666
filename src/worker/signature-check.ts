import type { Logger } from 'pino';
import { splitJobData, verifyJobSignature } from '../jobs/signing.js';
import type { TrustedKeys } from './trusted-keys.js';

/** What admission needs to check signatures: the trusted keys (none: no signature is required), the queue, a clock. */
export interface SignatureGate {
  trusted: TrustedKeys | undefined;
  queue: string;
  now: () => number;
}

export type SignatureOutcome = { ok: true; spec: unknown } | { ok: false; message: string };

/**
 * The spec part of job data, once its signature passed. Without trusted keys the worker has
 * nothing to check a signature against, so it verifies none and only sets the field aside.
 */
export async function checkSignature(
  job: { id: string; data: unknown },
  gate: SignatureGate,
  log: Logger,
): Promise<SignatureOutcome> {
  if (!gate.trusted) return { ok: true, spec: splitJobData(job.data).spec };
  const keys = await gate.trusted.current();
  const verdict = verifyJobSignature(job.data, {
    jobId: job.id,
    queue: gate.queue,
    now: gate.now(),
    publicKey: (id) => keys.get(id),
  });
  if (!verdict.ok) {
    log.warn({ keyId: verdict.keyId, refusal: verdict.refusal }, `refused job: ${verdict.message}`);
    return { ok: false, message: `validating: ${verdict.message}` };
  }
  log.debug({ keyId: verdict.keyId }, 'job signature verified');
  return { ok: true, spec: verdict.spec };
}
