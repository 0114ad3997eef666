export { ConfigError } from './config/errors.js';
export { loadConfig, type WorkerConfig } from './config/worker.js';
export * from './executors/index.js';
export { canonicalJson } from './jobs/canonical-json.js';
export {
  type CancelOutcome,
  type ClientOptions,
  StevedoreClient,
  type SubmitOptions,
} from './jobs/client.js';
export type { RedisTarget } from './jobs/connection.js';
export * from './jobs/errors.js';
export type { JobProgress, RunPhase } from './jobs/progress.js';
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
export { type QueueState, type Waiting, type WaitingReason, whyWaiting } from './jobs/waiting.js';
export {
  DEFAULT_PRESENCE_STALE_MS,
  listWorkers,
  type WorkerList,
  type WorkerPresence,
} from './jobs/workers.js';
export { type WorkerEventMap, WorkerEvents } from './worker/observer.js';
export { startWorker, type WorkerHandle, type WorkerProbe } from './worker/worker.js';
