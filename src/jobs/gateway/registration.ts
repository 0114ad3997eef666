import type { RedisConnection } from '../connection.js';
import { keys, type QueueAddress } from '../keys.js';

/** A running job's gateway, as its worker registers it in Redis for clients on any host. */
export interface GatewayEntry {
  host: string;
  port: number;
  /** Whether the worker serves the gateway over TLS. */
  tls: boolean;
  attempt: number;
  workerId: string;
  /** This attempt's secret (jobs/gateway/handshake.ts). Never logged. */
  secret: string;
}

// Writes only over an entry of the same worker and attempt, or none: a worker that lost the job
// (its lock expired, another worker took it) must not point clients back at itself.
const WRITE_OWN = `
local current = redis.call('GET', KEYS[1])
if current then
  local entry = cjson.decode(current)
  if entry.workerId ~= ARGV[2] or tonumber(entry.attempt) > tonumber(ARGV[3]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
return 1`;

const DELETE_OWN = `
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local entry = cjson.decode(current)
if entry.workerId ~= ARGV[1] or tonumber(entry.attempt) ~= tonumber(ARGV[2]) then return 0 end
return redis.call('DEL', KEYS[1])`;

/**
 * Registers (or refreshes) a job's gateway for `ttlMs`: the worker refreshes it while the job
 * runs, so it lapses with the job's lock when the worker dies. False when another worker's or a
 * later attempt's entry is there.
 */
export async function registerGateway(
  redis: RedisConnection,
  address: QueueAddress,
  jobId: string,
  entry: GatewayEntry,
  ttlMs: number,
): Promise<boolean> {
  const written = await redis.eval(
    WRITE_OWN,
    1,
    keys.gateway(address, jobId),
    JSON.stringify(entry),
    entry.workerId,
    String(entry.attempt),
    String(Math.max(1, Math.round(ttlMs))),
  );
  return written === 1;
}

/** Removes the entry when the run ends, if it is still this worker's for this attempt. */
export async function unregisterGateway(
  redis: RedisConnection,
  address: QueueAddress,
  jobId: string,
  owner: { workerId: string; attempt: number },
): Promise<void> {
  await redis.eval(DELETE_OWN, 1, keys.gateway(address, jobId), owner.workerId, String(owner.attempt));
}

/** The job's gateway, or null when it has none (not running, or its worker serves no gateway). */
export async function readGateway(
  redis: RedisConnection,
  address: QueueAddress,
  jobId: string,
): Promise<GatewayEntry | null> {
  const text = await redis.get(keys.gateway(address, jobId));
  if (text === null) return null;
  try {
    const entry = JSON.parse(text) as Partial<GatewayEntry>;
    if (
      typeof entry.host === 'string' &&
      typeof entry.port === 'number' &&
      typeof entry.attempt === 'number' &&
      typeof entry.workerId === 'string' &&
      typeof entry.secret === 'string'
    ) {
      return { ...entry, tls: entry.tls === true } as GatewayEntry;
    }
  } catch {
    // Not ours to read: treated as no entry, the same as a job without a gateway.
  }
  return null;
}
