import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { RedisServerProcess } from './redis-server.js';

/** The file in the state directory that tells other stevedore commands where the embedded Redis is. */
export const redisUrlFile = (stateDir: string): string => join(stateDir, 'redis.url');

/**
 * Starts a private redis-server for a worker that was given no REDIS_URL: loopback only,
 * append-only file on, data in `<stateDir>/redis`. Its URL is written to `<stateDir>/redis.url`
 * so that `stevedore submit` on this host finds it.
 */
export async function startEmbeddedRedis(
  stateDir: string,
  logger: Logger,
): Promise<{ url: string; stop: () => Promise<void> }> {
  await mkdir(stateDir, { recursive: true });
  const server = new RedisServerProcess({ dataDir: join(stateDir, 'redis'), logger });
  await server.start();
  await writeFile(redisUrlFile(stateDir), `${server.url}\n`);
  logger.info(
    { url: server.url, dataDir: join(stateDir, 'redis') },
    'no REDIS_URL given: started an embedded redis-server (loopback only, append-only file on)',
  );
  return {
    url: server.url,
    stop: async () => {
      await rm(redisUrlFile(stateDir), { force: true });
      await server.stop();
    },
  };
}
