import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { loadClientConfig } from '../config/client.js';
import { processEnv } from '../config/env.js';
import { REDIS_TLS_VARIABLES, readRedisTls } from '../config/redis.js';
import type { RedisTopology } from '../config/redis-topology.js';
import type { Overrides } from '../config/settings.js';
import { type ClientOptions, StevedoreClient } from '../jobs/client.js';
import { coerceError } from '../jobs/errors.js';
import { checkRedisAccess } from '../jobs/redis-check.js';
import type { SigningKey } from '../jobs/signing.js';
import { redisUrlFile } from '../worker/embedded-redis.js';
import { UsageError } from './usage.js';

export const CLIENT_OPTIONS = {
  'redis-url': { type: 'string' },
  'redis-tls-ca': { type: 'string' },
  'redis-tls-cert': { type: 'string' },
  'redis-tls-key': { type: 'string' },
  queue: { type: 'string' },
  prefix: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

/** parseArgs, with its errors turned into UsageError (exit status 2). */
export function parse<T extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: T,
): ReturnType<typeof parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>> {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError(coerceError(error).message);
  }
}

/** The key of `--signing-key FILE` / STEVEDORE_SIGNING_KEY; its id is the file's base name without .key. */
function readSigningKey(file: string): SigningKey {
  try {
    return { id: basename(file, '.key'), privateKey: readFileSync(file, 'utf8') };
  } catch (error) {
    throw new UsageError(`cannot read signing key ${file}: ${coerceError(error).message}`);
  }
}

function readPem(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read the ${what} ${file}: ${coerceError(error).message}`);
  }
}

/** The flags every client command takes (CLIENT_OPTIONS), and submit's --signing-key. */
export interface ClientFlags {
  'redis-url'?: string;
  'redis-tls-ca'?: string;
  'redis-tls-cert'?: string;
  'redis-tls-key'?: string;
  queue?: string;
  prefix?: string;
  'signing-key'?: string;
  /** exec, shell, port-forward: STEVEDORE_GATEWAY_TLS_CA. */
  'gateway-tls-ca'?: string;
}

/**
 * Client options for the queue named by the flags, the environment or a local embedded worker;
 * with `signing`, with the key of --signing-key or STEVEDORE_SIGNING_KEY, if any. Wrong
 * credentials or an untrusted certificate fail here, before any command waits on Redis.
 */
export async function clientOptionsFrom(
  values: ClientFlags,
  { signing = false } = {},
): Promise<ClientOptions & { redis: string | RedisTopology; queue: string; prefix: string }> {
  const overrides: Overrides = {};
  if (values['signing-key']) overrides.STEVEDORE_SIGNING_KEY = values['signing-key'];
  if (values['redis-url']) overrides.REDIS_URL = values['redis-url'];
  if (values['redis-tls-ca']) overrides[REDIS_TLS_VARIABLES.ca] = values['redis-tls-ca'];
  if (values['redis-tls-cert']) overrides[REDIS_TLS_VARIABLES.cert] = values['redis-tls-cert'];
  if (values['redis-tls-key']) overrides[REDIS_TLS_VARIABLES.key] = values['redis-tls-key'];
  if (values.queue) overrides.STEVEDORE_QUEUE = values.queue;
  if (values.prefix) overrides.STEVEDORE_PREFIX = values.prefix;
  if (values['gateway-tls-ca']) overrides.STEVEDORE_GATEWAY_TLS_CA = values['gateway-tls-ca'];
  const config = loadClientConfig(processEnv(), overrides, (stateDir) => {
    try {
      return readFileSync(redisUrlFile(stateDir), 'utf8').trim() || undefined;
    } catch {
      return undefined;
    }
  });
  const redis = config.redisTopology ?? config.redisUrl;
  if (!redis) {
    throw new UsageError(
      'no Redis to talk to: set REDIS_URL or --redis-url (or REDIS_SENTINELS, or REDIS_CLUSTER_NODES), or start `stevedore worker` on this host (it runs an embedded Redis)',
    );
  }
  const signingKey = signing && config.signingKeyFile ? readSigningKey(config.signingKeyFile) : undefined;
  const tls = readRedisTls(config.redisTls);
  await checkRedisAccess(redis, tls);
  const gatewayTls = config.gatewayTlsCaFile
    ? { ca: readPem(config.gatewayTlsCaFile, 'gateway CA') }
    : undefined;
  return {
    redis,
    tls,
    queue: config.queue,
    prefix: config.prefix,
    signingKey,
    gatewayTls,
    gatewayKeepalive: config.gatewayKeepalive,
  };
}

/** A client for the queue named by the flags (see clientOptionsFrom). */
export async function clientFrom(values: ClientFlags, { signing = false } = {}): Promise<StevedoreClient> {
  return new StevedoreClient(await clientOptionsFrom(values, { signing }));
}

/** The single job id positional of status/result/cancel. */
export function jobIdArg(command: string, positionals: string[]): string {
  if (positionals.length !== 1 || !positionals[0]) {
    throw new UsageError(`${command} needs exactly one job id: stevedore ${command} <id>`);
  }
  return positionals[0];
}
