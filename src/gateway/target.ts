/**
 * What the gateway's sessions see of a running job: the worker's public face for the gateway
 * (src/worker/gateway-jobs.ts), the executor's GatewayTarget and nothing else of the worker.
 */
export type {
  AuditRecord,
  AuditStart,
  ExecStream,
  GatewayJob,
  GatewaySessionTarget,
} from '../worker/gateway-jobs.js';
