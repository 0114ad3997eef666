/**
 * Redis keys Stevedore keeps beside BullMQ's own, under the same prefix and queue so that a
 * hash-tagged prefix (`{stevedore}`) keeps them in one Redis Cluster slot.
 */
export interface QueueAddress {
  prefix: string;
  queue: string;
}

const base = (a: QueueAddress): string => `${a.prefix}:${a.queue}:stevedore`;

export const keys = {
  /** Durable cancel request for a job (set before anything else, checked before a container starts). */
  cancel: (a: QueueAddress, jobId: string) => `${base(a)}:cancel:${jobId}`,
  /** Pub/sub channel on which cancel requests are announced to every worker. */
  cancelChannel: (a: QueueAddress) => `${base(a)}:cancel-channel`,
  /** Results of jobs that did not complete through BullMQ (failed, or cancelled while waiting). */
  result: (a: QueueAddress, jobId: string) => `${base(a)}:result:${jobId}`,
};

/** How long cancel flags and side results live. */
export const SIDE_KEY_TTL_SECONDS = 7 * 24 * 3600;

export const DEFAULT_QUEUE = 'stevedore';
export const DEFAULT_PREFIX = 'bull';
