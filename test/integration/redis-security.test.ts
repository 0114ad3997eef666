import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readRedisTls } from '../../src/config/redis.js';
import { loadConfig } from '../../src/config/worker.js';
import { StevedoreClient } from '../../src/jobs/client.js';
import { startWorker, type WorkerHandle } from '../../src/worker/worker.js';
import { stevedore } from '../helpers/cli.js';
import { useLeakCheck } from '../helpers/leaks.js';
import { CustomRedis } from '../helpers/redis-custom.js';
import { busybox, testPolicy, testQueue, writePolicy } from '../helpers/stevedore.js';
import { makeTestCerts, type TestCerts } from '../helpers/test-certs.js';
import { TlsResetServer } from '../helpers/tls-reset-server.js';

/** The ACL user "Redis ACL users" in docs/configuration.md documents: the default key prefix, every channel, no dangerous command but INFO. */
const PASSWORD = 'acl-Pa55word-never-printed';
const ACL = `user default off
user stevedore on >${PASSWORD} resetkeys ~bull:* resetchannels &* +@all -@dangerous +info
`;

// Its own set-up, not useTestWorld: TLS-only and ACL redis-servers, with their certificates.
describe('Redis over TLS and with ACL users', () => {
  useLeakCheck();
  let certs: TestCerts;
  const cleanup: (() => Promise<void>)[] = [];
  beforeAll(async () => {
    certs = await makeTestCerts();
  });
  afterAll(async () => {
    await rm(certs.dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  /** A worker with its log kept, on `env`'s Redis; closed after the test. */
  async function worker(env: Record<string, string>, lines: string[]): Promise<WorkerHandle> {
    const dir = join(certs.dir, testQueue());
    await mkdir(dir, { recursive: true });
    const config = {
      ...loadConfig({ STEVEDORE_STATE_DIR: dir, ...env }),
      queue: env.STEVEDORE_QUEUE ?? testQueue(),
      concurrency: 1,
      policyPath: await writePolicy(dir, testPolicy()),
    };
    const logger = pino({ level: 'debug' }, { write: (line: string) => lines.push(line) });
    const handle = await startWorker(config, { logger });
    cleanup.push(() => handle.close({ graceMs: 0 }));
    return handle;
  }

  async function tlsRedis(): Promise<CustomRedis> {
    // TLS only (no plain port), and clients must show a certificate signed by the CA.
    const redis = await CustomRedis.start((port) => [
      '--port',
      '0',
      '--tls-port',
      String(port),
      '--tls-cert-file',
      certs.serverCert,
      '--tls-key-file',
      certs.serverKey,
      '--tls-ca-cert-file',
      certs.ca,
      '--tls-auth-clients',
      'yes',
    ]);
    cleanup.push(() => redis.close());
    return redis;
  }

  it('runs a job end to end over rediss:// with mutual TLS (worker and client)', async () => {
    const redis = await tlsRedis();
    const queue = testQueue();
    const env = {
      REDIS_URL: `rediss://127.0.0.1:${redis.port}`,
      STEVEDORE_QUEUE: queue,
      STEVEDORE_REDIS_TLS_CA: certs.ca,
      STEVEDORE_REDIS_TLS_CERT: certs.clientCert,
      STEVEDORE_REDIS_TLS_KEY: certs.clientKey,
    };
    await worker(env, []);
    const tls = readRedisTls({ ca: certs.ca, cert: certs.clientCert, key: certs.clientKey });
    const client = new StevedoreClient({ redis: env.REDIS_URL, tls, queue });
    cleanup.push(() => client.close());
    const { id } = await client.submit(busybox(['echo', 'over tls']));
    // waitForResult rides QueueEvents, BullMQ's blocking connection: TLS reaches it too.
    expect(await client.waitForResult(id, { timeoutMs: 30_000 })).toMatchObject({
      state: 'Complete',
      stdout: { tail: 'over tls\n' },
    });
    // The CLI takes the same files as flags.
    const cli = await stevedore([
      'result',
      id,
      '--redis-url',
      env.REDIS_URL,
      '--queue',
      queue,
      '--redis-tls-ca',
      certs.ca,
      '--redis-tls-cert',
      certs.clientCert,
      '--redis-tls-key',
      certs.clientKey,
    ]);
    expect(cli.stderr).toBe('');
    expect(JSON.parse(String(cli.stdout))).toMatchObject({ jobId: id, exitCode: 0 });
  });

  it('a certificate from an unknown CA stops the worker and the CLI at start, saying what to set', async () => {
    const redis = await tlsRedis();
    const env = {
      REDIS_URL: `rediss://127.0.0.1:${redis.port}`,
      STEVEDORE_REDIS_TLS_CA: certs.otherCa,
      STEVEDORE_REDIS_TLS_CERT: certs.clientCert,
      STEVEDORE_REDIS_TLS_KEY: certs.clientKey,
    };
    const expected = `connecting to Redis: the TLS certificate of Redis at rediss://127.0.0.1:${redis.port} was not accepted (SELF_SIGNED_CERT_IN_CHAIN: self-signed certificate in certificate chain): set STEVEDORE_REDIS_TLS_CA (--redis-tls-ca) to the CA that signed the server's certificate`;
    await expect(worker(env, [])).rejects.toThrow(expected);
    const cli = await stevedore(['status', 'some-job'], { env });
    expect(cli.exitCode).toBe(1);
    expect(cli.stderr).toContain('was not accepted (SELF_SIGNED_CERT_IN_CHAIN');
    // Without a client certificate a tls-auth-clients server hangs up: said as such.
    const noCert = await stevedore(['status', 'some-job'], {
      env: {
        ...env,
        STEVEDORE_REDIS_TLS_CA: certs.ca,
        STEVEDORE_REDIS_TLS_CERT: '',
        STEVEDORE_REDIS_TLS_KEY: '',
      },
    });
    expect(noCert.stderr).toContain(
      'needs a client certificate: set STEVEDORE_REDIS_TLS_CERT and STEVEDORE_REDIS_TLS_KEY',
    );
  });

  it('a TLS server that breaks the session and resets stops the worker and the CLI with their one-line message, not a crash', async () => {
    // Every connection fails twice on its socket (OpenSSL's error, then the reset): ioredis's own
    // once() listeners were spent by the first, and the second killed the process.
    const server = await TlsResetServer.start(certs);
    cleanup.push(() => server.close());
    const dir = join(certs.dir, testQueue());
    await mkdir(dir, { recursive: true });
    const env = {
      REDIS_URL: `rediss://127.0.0.1:${server.port}`,
      STEVEDORE_REDIS_TLS_CA: certs.ca,
      STEVEDORE_STATE_DIR: dir,
      STEVEDORE_QUEUE: testQueue(),
    };
    const line = new RegExp(
      `^stevedore: connecting to Redis: the TLS handshake with Redis at rediss://127\\.0\\.0\\.1:${server.port} failed \\([^\\n]*bad record mac[^\\n]*\\): check rediss:// and STEVEDORE_REDIS_TLS_CA / _CERT / _KEY`,
    );
    // The worker in a process of its own, as deployed: a crash would end it (and not this test's).
    const worker = await stevedore(['worker'], { env, timeout: 60_000 });
    expect(String(worker.stderr)).not.toContain('Unhandled');
    expect(String(worker.stderr).trim().split('\n')).toHaveLength(1);
    expect(String(worker.stderr).trim()).toMatch(line);
    expect(worker.exitCode).toBe(2);
    const cli = await stevedore(['status', 'some-job'], { env, timeout: 60_000 });
    expect(String(cli.stderr)).not.toContain('Unhandled');
    expect(String(cli.stderr).trim()).toMatch(
      /^stevedore: the TLS handshake with Redis at rediss:\/\/127\.0\.0\.1:\d+ failed \([^\n]*bad record mac[^\n]*\): check rediss:\/\//,
    );
    expect(cli.exitCode).toBe(1);
  });

  async function aclRedis(): Promise<CustomRedis> {
    const redis = await CustomRedis.start(async (port, dir) => {
      const file = join(dir, 'users.acl');
      await writeFile(file, ACL);
      return ['--port', String(port), '--aclfile', file];
    });
    cleanup.push(() => redis.close());
    return redis;
  }

  it('runs a job end to end as an ACL user with the documented rules, and no log line holds the password', async () => {
    const redis = await aclRedis();
    const queue = testQueue();
    const url = `redis://stevedore:${PASSWORD}@127.0.0.1:${redis.port}`;
    const lines: string[] = [];
    const handle = await worker({ REDIS_URL: url, STEVEDORE_QUEUE: queue }, lines);
    expect(handle.redis).toBe(url);
    const client = new StevedoreClient({ redis: url, queue });
    cleanup.push(() => client.close());
    const { id } = await client.submit(busybox(['sh', '-c', 'echo as acl user']));
    const result = await client.waitForResult(id, { timeoutMs: 30_000 });
    expect(result).toMatchObject({ state: 'Complete', stdout: { tail: 'as acl user\n' } });
    const cli = await stevedore(['logs', id, '--redis-url', url, '--queue', queue]);
    expect(cli.stdout).toBe('as acl user');
    expect(lines.length).toBeGreaterThan(2);
    expect(
      [...lines, JSON.stringify(result), String(cli.stdout), String(cli.stderr)].filter((l) =>
        l.includes(PASSWORD),
      ),
    ).toEqual([]);
  });

  it('a wrong password stops the worker and the CLI at start with a clear error that does not hold it', async () => {
    const redis = await aclRedis();
    const wrong = 'wrong-Secret-42';
    const url = `redis://stevedore:${wrong}@127.0.0.1:${redis.port}`;
    const lines: string[] = [];
    const error = await worker({ REDIS_URL: url }, lines).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(error?.message).toBe(
      `connecting to Redis: Redis at redis://stevedore:***@127.0.0.1:${redis.port} refused the credentials (WRONGPASS invalid username-password pair or user is disabled.): check the user and password in REDIS_URL`,
    );
    expect(JSON.stringify({ error, cause: error?.cause, lines })).not.toContain(wrong);
    const cli = await stevedore(['submit', '--image', 'busybox', '--', 'true'], { env: { REDIS_URL: url } });
    expect(cli.exitCode).toBe(1);
    expect(cli.stderr).toContain('refused the credentials (WRONGPASS');
    const worker2 = await stevedore(['worker'], { env: { REDIS_URL: url, LOG_LEVEL: 'debug' } });
    expect(worker2.stderr).toContain('stevedore: connecting to Redis: Redis at redis://stevedore:***@');
    for (const args of [['--help'], ['worker', '--help'], ['submit', '--help'], ['logs', '--help']]) {
      const help = await stevedore(args, { env: { REDIS_URL: url } });
      expect(`${help.stdout}${help.stderr}`).not.toContain(wrong);
    }
    expect(`${cli.stdout}${cli.stderr}${worker2.stdout}${worker2.stderr}`).not.toContain(wrong);
  });
});
