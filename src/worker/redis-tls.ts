import { readFileSync } from 'node:fs';
import type { RedisTls } from '../jobs/connection.js';
import { coerceError } from '../jobs/errors.js';
import { ConfigError, REDIS_TLS_VARIABLES, type RedisTlsFiles } from './config.js';

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
      throw new ConfigError(
        `${REDIS_TLS_VARIABLES[field]}=${JSON.stringify(path)} cannot be read (${(error as NodeJS.ErrnoException).code ?? coerceError(error).message}): give the path of a PEM file this user may read`,
      );
    }
  }
  return tls;
}
