import type { RedisConnection } from './connection.js';

/**
 * How many replicas must hold a write before it counts as safe, and how long to wait for them.
 * Redis replicates asynchronously: a write the master acknowledged but no replica received is
 * lost when a replica is promoted in its place (docs/redis.md, "What a failover can lose").
 */
export interface Durability {
  /** Replicas that must acknowledge the write (Redis `WAIT numreplicas`), at least 1. */
  replicas: number;
  /** How long to wait for them, in milliseconds, at least 1 (`WAIT`'s 0 would wait forever). */
  timeoutMs: number;
}

/** Why `durability` cannot be used, or undefined when it can. */
export function durabilityProblem(durability: Durability): string | undefined {
  const { replicas, timeoutMs } = durability;
  if (!Number.isInteger(replicas) || replicas < 1)
    return `durability.replicas is ${replicas}: give a whole number of replicas ≥ 1, or leave durability out`;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1)
    return `durability.timeoutMs is ${timeoutMs}: give whole milliseconds ≥ 1 (Redis's WAIT 0 would wait forever)`;
  return undefined;
}

/**
 * Replicas that acknowledged every write this connection made so far, waiting up to `timeoutMs`
 * for `replicas` of them (Redis `WAIT`). `WAIT` counts the writes of the connection that asks,
 * so ask on the connection that wrote. `key` names the node: a Cluster sends a pipeline to the
 * node of its keys (WAIT has none), which is the node that took this queue's writes.
 */
export async function acknowledgedBy(
  redis: RedisConnection,
  key: string,
  durability: Durability,
): Promise<number> {
  const replies = await redis.pipeline().exists(key).wait(durability.replicas, durability.timeoutMs).exec();
  const [error, acknowledged] = replies?.[1] ?? [new Error('no reply to WAIT'), 0];
  if (error) throw error;
  return Number(acknowledged);
}
