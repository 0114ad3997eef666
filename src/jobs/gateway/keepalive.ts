import { ValidationError } from '../errors.js';

/**
 * How a gateway session keeps a quiet peer and finds a dead one: each side pings every `pingMs`
 * (the other answers with a pong), and a peer that sent nothing at all for `peerTimeoutMs` is gone
 * (its host died, or the network between broke). Every frame, a pong too, counts as word from it.
 */
export interface Keepalive {
  pingMs: number;
  peerTimeoutMs: number;
}

/** Often enough for NATs and proxies that drop a connection idle for a minute. */
export const DEFAULT_PING_MS = 10_000;
/** Three pings unanswered and 5 s of slack for a busy host or a slow network (35 s by default). */
export const defaultPeerTimeoutMs = (pingMs: number): number => 3 * pingMs + 5_000;
/** Node's timers hold at most 2^31 − 1 ms; a longer delay fires at once (docs/pitfalls.md). */
export const MAX_KEEPALIVE_MS = 2 ** 31 - 1;
export const MIN_PING_MS = 100;

export const DEFAULT_KEEPALIVE: Keepalive = {
  pingMs: DEFAULT_PING_MS,
  peerTimeoutMs: defaultPeerTimeoutMs(DEFAULT_PING_MS),
};

/**
 * Why a keepalive cannot work, or null. A side hears from a live peer at least once a ping
 * (the pong to its own), so a timeout under two pings could take a live, quiet peer for gone.
 */
export function keepaliveProblem(keepalive: Keepalive): string | null {
  const { pingMs, peerTimeoutMs } = keepalive;
  if (!Number.isInteger(pingMs) || pingMs < MIN_PING_MS || pingMs > MAX_KEEPALIVE_MS)
    return `the ping interval must be a whole number of milliseconds from ${MIN_PING_MS} to ${MAX_KEEPALIVE_MS}`;
  if (!Number.isInteger(peerTimeoutMs) || peerTimeoutMs < 2 * pingMs || peerTimeoutMs > MAX_KEEPALIVE_MS)
    return `the peer timeout must be a whole number of milliseconds from twice the ping interval (${2 * pingMs}) to ${MAX_KEEPALIVE_MS}, or a live quiet peer could be taken for gone between two pings`;
  return null;
}

/** A keepalive from the parts given (the timeout follows the ping unless given); ValidationError when it cannot work. */
export function resolveKeepalive(given: Partial<Keepalive> = {}): Keepalive {
  const pingMs = given.pingMs ?? DEFAULT_PING_MS;
  const keepalive = { pingMs, peerTimeoutMs: given.peerTimeoutMs ?? defaultPeerTimeoutMs(pingMs) };
  const problem = keepaliveProblem(keepalive);
  if (problem) throw new ValidationError(`gateway keepalive ${JSON.stringify(given)}: ${problem}`);
  return keepalive;
}
