import type { Readable, Writable } from 'node:stream';
import type { ExecRequest } from '../jobs/gateway/handshake.js';

/** A command running inside a job's container, as the gateway streams it. */
export interface ExecStream {
  /** The command's stdin; null when the request did not keep it open. */
  stdin: Writable | null;
  /** stdout, or the terminal's one stream with a tty. */
  stdout: Readable;
  /** null with a tty (the terminal merges both streams). */
  stderr: Readable | null;
  /** Tells the terminal its new size; a no-op without a tty. */
  resize(size: { cols: number; rows: number }): Promise<void>;
  /** The exit code, once the command ended and its output is drained. */
  exitCode: Promise<number>;
}

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
