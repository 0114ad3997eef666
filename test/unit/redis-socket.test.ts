import { readFile, rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/jobs/connection.js';
import { checkRedisAccess } from '../../src/jobs/redis-check.js';
import { makeTestCerts, type TestCerts } from '../helpers/test-certs.js';
import { TlsResetServer } from '../helpers/tls-reset-server.js';

// ioredis listens for its socket's errors with once(); a TLS socket that fails twice (a bad
// record, then the reset) must be heard both times, not end the process (vitest fails the run on
// an unhandled 'error' event).
let certs: TestCerts;
let server: TlsResetServer;
beforeAll(async () => {
  certs = await makeTestCerts();
  server = await TlsResetServer.start(certs);
});
afterAll(async () => {
  await server?.close();
  if (certs) await rm(certs.dir, { recursive: true, force: true });
});

describe('Redis sockets that fail twice', () => {
  it('a connection hears both errors of its socket and keeps retrying', async () => {
    const errors: string[] = [];
    const redis = connect(`rediss://127.0.0.1:${server.port}`, (error) => errors.push(error.message), {
      ca: await readFile(certs.ca),
    });
    try {
      const deadline = Date.now() + 10_000;
      while (!errors.some((m) => /ECONNRESET|EPROTO/.test(m)) && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 20));
      expect(errors.some((m) => /bad record mac/.test(m))).toBe(true);
      expect(errors.some((m) => /ECONNRESET|EPROTO/.test(m))).toBe(true);
    } finally {
      redis.disconnect();
    }
  });

  it('the start-up check answers with the first error, on one line', async () => {
    const ca = await readFile(certs.ca);
    for (let i = 0; i < 5; i++) {
      await expect(checkRedisAccess(`rediss://127.0.0.1:${server.port}`, { ca })).rejects.toThrow(
        /^the TLS handshake with Redis at rediss:\/\/127\.0\.0\.1:\d+ failed \([^\n]*bad record mac[^\n]*\): check rediss:\/\//,
      );
    }
  });
});
