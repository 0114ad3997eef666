import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readlink, realpath, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { withSocketErrors } from '../jobs/redis-socket.js';
import { redactRedisUrl } from '../jobs/redis-url.js';
import { freePort, RedisServerProcess, redisServerVersion } from './redis-server.js';
import { lockFile } from './state-lock.js';

/** The file in the state directory that tells other stevedore commands where the embedded Redis is. */
export const redisUrlFile = (stateDir: string): string => join(stateDir, 'redis.url');
/** `{ pid, port }` of the state directory's redis-server, for the next worker to find it. */
export const redisServerFile = (stateDir: string): string => join(stateDir, 'redis.json');
const lockPath = (stateDir: string): string => join(stateDir, 'redis.lock');
const dataDirOf = (stateDir: string): string => join(stateDir, 'redis');

/** The client name each worker's membership connection carries; the last one to leave stops the server. */
const MEMBER_NAME = 'stevedore-embedded-worker';
/** How long a found server may take to answer (it may be loading a large append-only file). */
const ANSWER_TIMEOUT_MS = 10_000;
/** How long SHUTDOWN may take before we give up waiting for the process to end. */
const SHUTDOWN_TIMEOUT_MS = 10_000;
/** Between checks that the stopped server's process is gone (it exits within milliseconds of SHUTDOWN). */
const EXIT_PROBE_INTERVAL_MS = 20;
/** 32 random bytes as hex: nothing to guess, and no character that needs quoting in a URL or redis.conf. */
const PASSWORD_BYTES = 32;
/** redis.url and redis.json hold the password: for the state directory's owner only. */
const SECRET_FILE_MODE = 0o600;
/** The state directory holds those files and the data: other local users may not even list it. */
const STATE_DIR_MODE = 0o700;

export interface EmbeddedRedis {
  /** With the password (`redis://:<password>@127.0.0.1:<port>`): a secret, never to be logged. */
  url: string;
  /** Leaves the server; stops it (SHUTDOWN, append-only file flushed) when no other worker uses it. */
  stop: () => Promise<void>;
}

interface ServerRecord {
  pid: number;
  port: number;
  /** The server's requirepass; absent only in a record written before servers had one. */
  password?: string;
}

const urlOf = (record: ServerRecord): string =>
  `redis://${record.password === undefined ? '' : `:${record.password}@`}127.0.0.1:${record.port}`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readRecord(stateDir: string): Promise<ServerRecord | undefined> {
  try {
    const parsed = JSON.parse(await readFile(redisServerFile(stateDir), 'utf8')) as Partial<ServerRecord>;
    return Number.isInteger(parsed.pid) &&
      Number.isInteger(parsed.port) &&
      (parsed.password === undefined || typeof parsed.password === 'string')
      ? (parsed as ServerRecord)
      : undefined;
  } catch {
    return undefined;
  }
}

/** Written whole or not at all, readable by the owner only from its first byte. */
async function writeSecretFile(path: string, text: string): Promise<void> {
  await rm(`${path}.tmp`, { force: true }); // a leftover could have been made with a wider mode
  await writeFile(`${path}.tmp`, text, { mode: SECRET_FILE_MODE, flag: 'wx' });
  await rename(`${path}.tmp`, path);
}

/** A connection that names us as a user of the server; undefined when nothing answers on the port. */
async function joinServer(record: ServerRecord, logger: Logger): Promise<Redis | undefined> {
  const onError = (error: Error): void =>
    logger.debug({ err: error }, 'embedded redis membership connection');
  const member = new Redis(
    withSocketErrors(
      {
        host: '127.0.0.1',
        port: record.port,
        password: record.password,
        connectionName: MEMBER_NAME,
        lazyConnect: true,
        maxRetriesPerRequest: null,
        commandTimeout: ANSWER_TIMEOUT_MS,
      },
      onError,
    ),
  );
  member.on('error', onError);
  try {
    await member.connect();
    return member;
  } catch {
    member.disconnect();
    return undefined;
  }
}

/** Whether the server on `member` is the recorded process and serves this data directory. */
async function isOurs(member: Redis, record: ServerRecord, dataDir: string): Promise<boolean> {
  const info = await member.info('server');
  const dir = (await member.config('GET', 'dir')) as string[];
  return info.includes(`process_id:${record.pid}\r\n`) && dir[1] === (await realpath(dataDir));
}

/**
 * Whether `pid` is a redis-server working in `dataDir` (it chdirs there; its command line is
 * rewritten to a title). False for a pid reused by another process, e.g. after a reboot.
 */
async function servesDataDir(pid: number, dataDir: string): Promise<boolean> {
  const comm = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '');
  const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => '');
  return comm.startsWith('redis-server') && cwd === (await realpath(dataDir).catch(() => dataDir));
}

/**
 * The embedded Redis of a state directory, for workers given no REDIS_URL: one redis-server per
 * state directory (loopback only, append-only file in `<stateDir>/redis`), however many workers
 * use it. Under an flock on `<stateDir>/redis.lock`, a worker reuses the server named by
 * `redis.json` when that process answers for this data directory (also an orphan whose worker
 * died), and otherwise starts one (taking over a dead server's files, on its old port when free).
 * The server outlives a crashed worker; the last worker to stop stops it.
 */
export async function startEmbeddedRedis(stateDir: string, logger: Logger): Promise<EmbeddedRedis> {
  await mkdir(stateDir, { recursive: true, mode: STATE_DIR_MODE });
  const dataDir = dataDirOf(stateDir);
  const version = await redisServerVersion(); // before the lock: a missing redis-server is the first thing to say
  const lock = await lockFile(lockPath(stateDir));
  let record: ServerRecord;
  let member: Redis;
  try {
    const found = await findRunning(stateDir, dataDir, logger);
    if (found) {
      ({ record, member } = found);
      logger.info(
        { url: redactRedisUrl(urlOf(record)), redisPid: record.pid, dataDir },
        'no REDIS_URL given: using the embedded redis-server already running for this state directory',
      );
    } else {
      ({ record, member } = await startNew(stateDir, dataDir, version, logger));
    }
  } finally {
    await lock.release();
  }
  return { url: urlOf(record), stop: () => leave(stateDir, record, member, logger) };
}

/** Starts the state directory's server (under the lock) and records it for the next worker and for clients. */
async function startNew(
  stateDir: string,
  dataDir: string,
  version: string,
  logger: Logger,
): Promise<{ record: ServerRecord; member: Redis }> {
  const previous = await readRecord(stateDir);
  const logFile = join(stateDir, 'redis-server.log');
  // The old port when it is free, so a client holding the old redis.url still finds it.
  // And its password, so that client still gets in; a first start makes one.
  const password = previous?.password ?? randomBytes(PASSWORD_BYTES).toString('hex');
  const server = new RedisServerProcess({
    dataDir,
    port: await freePort(previous?.port ?? 0),
    password,
    logger,
    detachedLogFile: logFile,
  });
  await server.start();
  const record: ServerRecord = { pid: server.pid as number, port: server.port, password };
  const member = await joinServer(record, logger);
  if (!member) {
    throw new Error(
      `the embedded redis-server (pid ${record.pid}) stopped answering right after it started; see ${logFile}`,
    );
  }
  await writeSecretFile(redisServerFile(stateDir), `${JSON.stringify(record)}\n`);
  await writeSecretFile(redisUrlFile(stateDir), `${urlOf(record)}\n`);
  logger.info(
    {
      url: redactRedisUrl(urlOf(record)),
      redisPid: record.pid,
      version,
      dataDir,
      replaced: previous?.pid,
    },
    'no REDIS_URL given: started an embedded redis-server (loopback only, append-only file on)',
  );
  return { record, member };
}

/**
 * The running server of this state directory, joined; undefined when there is none (no record,
 * or its process is gone or is not a redis-server any more: a stale record to take over).
 */
async function findRunning(
  stateDir: string,
  dataDir: string,
  logger: Logger,
): Promise<{ record: ServerRecord; member: Redis } | undefined> {
  const record = await readRecord(stateDir);
  if (!record) return undefined;
  if (!alive(record.pid) || !(await servesDataDir(record.pid, dataDir))) {
    logger.info(
      { redisPid: record.pid, dataDir },
      'the embedded redis-server recorded in the state directory is gone: starting a new one',
    );
    return undefined;
  }
  const member = await joinServer(record, logger);
  if (member && (await isOurs(member, record, dataDir).catch(() => false))) return { record, member };
  member?.disconnect();
  // Two servers on one append-only file would corrupt it: never start a second one.
  throw new Error(
    `redis-server pid ${record.pid} (named in ${redisServerFile(stateDir)}) is running but does not answer for ${dataDir} on port ${record.port}: stop it (kill ${record.pid}) and start the worker again, or set REDIS_URL`,
  );
}

/**
 * SHUTDOWN on a connection of its own that never reconnects: the reply never comes (the server
 * closes the connection as it exits), and a reconnecting client would send it again.
 */
async function shutdown(record: ServerRecord): Promise<void> {
  // The close as it exits is the expected outcome: its errors, on the client or its socket, are not news.
  const expected = (): void => undefined;
  const connection = new Redis(
    withSocketErrors(
      {
        host: '127.0.0.1',
        port: record.port,
        password: record.password,
        lazyConnect: true,
        retryStrategy: () => null,
        maxRetriesPerRequest: 0,
        autoResendUnfulfilledCommands: false,
      },
      expected,
    ),
  );
  connection.on('error', expected);
  try {
    await connection.connect();
    await connection.call('SHUTDOWN').catch(() => undefined);
  } finally {
    connection.disconnect();
  }
}

/** How many other workers hold a membership connection to the server (CLIENT LIST, by name). */
async function otherMembers(member: Redis): Promise<number> {
  const own = await member.client('ID');
  const list = String(await member.client('LIST'));
  return list
    .split('\n')
    .filter((line) => line.includes(` name=${MEMBER_NAME} `) && !line.startsWith(`id=${own} `)).length;
}

async function leave(stateDir: string, record: ServerRecord, member: Redis, logger: Logger): Promise<void> {
  const lock = await lockFile(lockPath(stateDir));
  try {
    if (!alive(record.pid)) {
      // Killed from outside: nothing to stop, and the next worker takes over its record.
      member.disconnect();
      logger.warn({ redisPid: record.pid }, 'the embedded redis-server had already exited');
      return;
    }
    const others = await otherMembers(member);
    if (others > 0) {
      await member.quit();
      logger.info(
        { redisPid: record.pid, others },
        'left the embedded redis-server running: other workers use it',
      );
      return;
    }
    member.disconnect();
    await shutdown(record);
    const deadline = Date.now() + SHUTDOWN_TIMEOUT_MS;
    while (alive(record.pid) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, EXIT_PROBE_INTERVAL_MS));
    }
    if (alive(record.pid)) {
      logger.warn(
        { redisPid: record.pid },
        `the embedded redis-server did not exit within ${SHUTDOWN_TIMEOUT_MS} ms of SHUTDOWN; left running`,
      );
      return;
    }
    await rm(redisUrlFile(stateDir), { force: true });
    await rm(redisServerFile(stateDir), { force: true });
    logger.info({ redisPid: record.pid }, 'stopped the embedded redis-server: no other worker uses it');
  } catch (error) {
    member.disconnect();
    logger.warn(
      { err: error, redisPid: record.pid },
      'could not tell whether other workers use the embedded redis-server; left running',
    );
  } finally {
    await lock.release();
  }
}
