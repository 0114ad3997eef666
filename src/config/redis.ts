import { readFileSync } from 'node:fs';
import type { RedisTls } from '../jobs/connection.js';
import { coerceError } from '../jobs/errors.js';
import { redactRedisUrl } from '../jobs/redis-url.js';
import { ConfigError } from './errors.js';
import type { SettingReader } from './settings.js';

/** Paths of the TLS files for `rediss://`, from STEVEDORE_REDIS_TLS_CA, _CERT and _KEY. */
export interface RedisTlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

/** The variables of `RedisTlsFiles`, each also a `--redis-tls-…` flag. */
export const REDIS_TLS_VARIABLES = {
  ca: 'STEVEDORE_REDIS_TLS_CA',
  cert: 'STEVEDORE_REDIS_TLS_CERT',
  key: 'STEVEDORE_REDIS_TLS_KEY',
} as const;

/** REDIS_URL checked for its scheme; the message shows it with the password hidden. */
export function checkRedisUrl(redisUrl: string | undefined): void {
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) {
    throw new ConfigError(
      `REDIS_URL=${JSON.stringify(redactRedisUrl(redisUrl))} is invalid: expected redis://[user:password@]host:port[/db] or rediss://… for TLS`,
    );
  }
}

/**
 * The TLS files named by the environment, undefined when none is. They only make sense with a
 * `rediss://` URL or a Sentinel or Cluster (`topology`: there, naming any of them turns TLS on),
 * and a client certificate needs its key: anything else is a ConfigError now rather than a
 * plain-text connection or a handshake failure later.
 */
export function redisTlsFiles(
  get: SettingReader,
  redisUrl: string | undefined,
  topology = false,
): RedisTlsFiles | undefined {
  const files: RedisTlsFiles = {};
  for (const [field, variable] of Object.entries(REDIS_TLS_VARIABLES) as [
    keyof RedisTlsFiles,
    (typeof REDIS_TLS_VARIABLES)[keyof RedisTlsFiles],
  ][]) {
    const value = get(variable);
    if (value) files[field] = value;
  }
  const named = Object.keys(files).map((f) => REDIS_TLS_VARIABLES[f as keyof RedisTlsFiles]);
  if (named.length === 0) return undefined;
  if (!topology && !redisUrl?.startsWith('rediss://')) {
    throw new ConfigError(
      `${named.join(', ')} ${named.length > 1 ? 'are' : 'is'} set, but REDIS_URL ${redisUrl ? 'is not a rediss:// URL' : 'is unset (the embedded Redis has no TLS)'}: use REDIS_URL=rediss://host:port, or unset ${named.join(', ')}`,
    );
  }
  if ((files.cert === undefined) !== (files.key === undefined)) {
    throw new ConfigError(
      `${files.cert ? REDIS_TLS_VARIABLES.cert : REDIS_TLS_VARIABLES.key} is set without ${files.cert ? REDIS_TLS_VARIABLES.key : REDIS_TLS_VARIABLES.cert}: a client certificate needs its key`,
    );
  }
  return files;
}

/**
 * The PEM files of `files`, read now, so that a missing or unreadable one stops the worker (or a
 * client command) at start naming the variable and the file. Their contents are never logged.
 */
export function readRedisTls(files: RedisTlsFiles | undefined): RedisTls | undefined {
  if (!files) return undefined;
  const tls: RedisTls = {};
  for (const field of ['ca', 'cert', 'key'] as const) {
    const path = files[field];
    if (path === undefined) continue;
    try {
      tls[field] = readFileSync(path);
    } catch (error) {
      const cause = coerceError(error) as NodeJS.ErrnoException;
      throw new ConfigError(
        `${REDIS_TLS_VARIABLES[field]}=${JSON.stringify(path)} cannot be read (${cause.code ?? cause.message}): give the path of a PEM file this user may read`,
      );
    }
  }
  return tls;
}
