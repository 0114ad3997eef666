import { Cluster, Redis, type RedisOptions } from 'ioredis';
import {
  describeTarget,
  newCluster,
  newRedis,
  type RedisConnection,
  type RedisTarget,
  type RedisTls,
  withoutSecrets,
} from './connection.js';

/** How long the start-up check waits for a first answer (a TLS handshake included). */
const CHECK_TIMEOUT_MS = 10_000;

/** Node's codes for a server certificate the client does not accept (node:tls, OpenSSL's verify errors). */
const CERT_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** Redis could be reached but refused us: wrong credentials, missing ACL permission, or TLS trouble. */
export class RedisAccessError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RedisAccessError';
  }
}

/** What went wrong and what to do, in words that never hold the password. */
function explain(where: string, error: NodeJS.ErrnoException, credentials = 'REDIS_URL'): string | undefined {
  // OpenSSL's messages end in a newline: the answer is one line.
  const message = error.message.trim().replace(/\s*\n\s*/g, ' ');
  if (/^(WRONGPASS|NOAUTH)/.test(message)) {
    return `Redis at ${where} refused the credentials (${message}): check the user and password in ${credentials}`;
  }
  if (/^NOPERM/.test(message)) {
    return `Redis at ${where} lets this user in but not do what Stevedore needs (${message}): see "Redis ACL users" in docs/configuration.md for the rules the user needs`;
  }
  if (error.code && CERT_CODES.has(error.code)) {
    return `the TLS certificate of Redis at ${where} was not accepted (${error.code}: ${message}): set STEVEDORE_REDIS_TLS_CA (--redis-tls-ca) to the CA that signed the server's certificate`;
  }
  // TLS 1.3 reports a missing client certificate after the handshake: as an alert, or a reset.
  if (where.startsWith('rediss:') && (error.code === 'ECONNRESET' || /certificate required/.test(message))) {
    return `Redis at ${where} closed the TLS connection (${message}): a server with tls-auth-clients needs a client certificate: set STEVEDORE_REDIS_TLS_CERT and STEVEDORE_REDIS_TLS_KEY (--redis-tls-cert, --redis-tls-key)`;
  }
  if (/handshake|certificate|ssl|tls/i.test(`${message} ${error.code ?? ''}`)) {
    return `the TLS handshake with Redis at ${where} failed (${message}): check rediss:// and STEVEDORE_REDIS_TLS_CA / _CERT / _KEY (a server with tls-auth-clients needs a client certificate)`;
  }
  return undefined;
}

/**
 * Connects once, without retries, and runs the commands every worker and client need first, so
 * that wrong credentials or an untrusted certificate stop the caller at once with a clear error
 * (`RedisAccessError`) instead of a silent reconnect loop. A Redis that is merely not up yet is
 * not an error here: the caller's own connections wait for it, as they do for an outage.
 */
export async function checkRedisAccess(target: RedisTarget, tls?: RedisTls): Promise<void> {
  if (target instanceof Redis || target instanceof Cluster) return; // a caller's own connection: theirs to check
  const where = describeTarget(target);
  let first: NodeJS.ErrnoException | undefined;
  const keepFirst = (error: NodeJS.ErrnoException): void => {
    first ??= error;
  };
  // Its socket's later errors (a TLS reset after a failed handshake) are the first one's echo.
  const once: RedisOptions = {
    lazyConnect: true,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    connectTimeout: CHECK_TIMEOUT_MS,
  };
  const probe: RedisConnection =
    typeof target === 'object' && 'clusterNodes' in target
      ? newCluster(
          target,
          tls,
          once,
          { lazyConnect: true, clusterRetryStrategy: () => null, enableOfflineQueue: false },
          keepFirst,
        )
      : newRedis(target, tls, once, keepFirst);
  probe.on('error', keepFirst);
  try {
    await probe.connect();
    await probe.ping();
  } catch (error) {
    const cause = first ?? (error as NodeJS.ErrnoException);
    // Through Sentinel or Cluster the data nodes' user and password are settings of their own.
    const credentials =
      typeof target === 'object' && ('clusterNodes' in target || target.sentinels)
        ? 'REDIS_USERNAME and REDIS_PASSWORD'
        : 'REDIS_URL';
    const message =
      explain(where, cause, credentials) ?? explain(where, error as NodeJS.ErrnoException, credentials);
    if (message) throw new RedisAccessError(message, { cause: withoutSecrets(cause) });
  } finally {
    probe.disconnect();
  }
}
