/**
 * `stevedore/client`: what a producer needs to submit jobs and read their results, and nothing
 * that runs containers. It imports src/jobs only (depcheck enforces it), so a producer's process
 * never loads dockerode, execa or the executors; the package's main export adds the worker.
 */
export type { CancelOutcome } from './jobs/cancellation.js';
export { canonicalJson } from './jobs/canonical-json.js';
export { type ClientOptions, StevedoreClient } from './jobs/client.js';
export type { ClusterTarget, HostPort, RedisTarget, RedisTls, SentinelTarget } from './jobs/connection.js';
export * from './jobs/errors.js';
export type { JobExecOptions, PortForward } from './jobs/gateway/client-gateway.js';
export type {
  ForwardEvent,
  ForwardListener,
  ForwardListenerOptions,
} from './jobs/gateway/forward-listener.js';
export type { Keepalive } from './jobs/gateway/keepalive.js';
export { type ExecSession, GatewayError } from './jobs/gateway/session.js';
export type { JobProgress, RunPhase } from './jobs/progress.js';
export type { Durability } from './jobs/replicas.js';
export type { AttemptRecord, JobResult, RunReason, RunState, StreamSummary, Usage } from './jobs/result.js';
export {
  type JobSignature,
  SIGNATURE_FIELD,
  type SigningKey,
  signedMessage,
  verifyJobSignature,
} from './jobs/signing.js';
export { type JobSpec, type JobSpecInput, parseJobSpec } from './jobs/spec.js';
export type { JobStatus } from './jobs/status.js';
export type { SubmitOptions } from './jobs/submission.js';
export { type QueueState, type Waiting, type WaitingReason, whyWaiting } from './jobs/waiting.js';
export {
  DEFAULT_PRESENCE_STALE_MS,
  listWorkers,
  type WorkerList,
  type WorkerPresence,
} from './jobs/workers.js';
