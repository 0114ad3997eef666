import type { ExecStream } from '../executors/executor.js';
import type { ExecRequest } from '../jobs/gateway/handshake.js';

export type { ExecStream };

/** What the gateway needs of a running job's container (the executor's gateway target). */
export interface GatewaySessionTarget {
  execStream(request: ExecRequest): Promise<ExecStream>;
  /** The container's address on its network; rejects when it has none. */
  ipAddress(): Promise<string>;
}

/** A job running on this worker, as its gateway sessions see it. */
export interface GatewayJob {
  jobId: string;
  attempt: number;
  /** This attempt's secret, as registered in Redis beside the job's gateway entry. */
  secret: string;
  target: GatewaySessionTarget;
  /** Whether the job has a network a forward can reach (without one, its loopback is its own). */
  networkEnabled: boolean;
  /** Aborted when the job's run ends: open sessions are told and closed. */
  ended: AbortSignal;
}

/** One exec or forward, for the job's events.log and the worker log. stdin content never appears. */
export interface AuditRecord {
  jobId: string;
  attempt: number;
  /** The signing key's id when the request was signed, else the client's address. */
  who: string;
  op: 'exec' | 'forward';
  /** The command, or the port forwarded to. */
  what: string[] | number;
  startedAt: string;
  endedAt: string;
  /** exec: the exit code, or null with why in `end`. */
  exitCode?: number | null;
  /** forward: bytes each way. */
  bytes?: { toJob: number; fromJob: number };
  /** How the session ended, when not with an exit code. */
  end?: string;
}
