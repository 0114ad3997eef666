import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StevedoreClient } from '../../src/jobs/client.js';
import { labelFilters } from '../../src/jobs/names.js';
import { signedJobData, signJob } from '../../src/jobs/signing.js';
import { testDocker } from '../helpers/docker.js';
import { watchCreates } from '../helpers/events.js';
import { busybox, useTestWorld } from '../helpers/stevedore.js';

interface Pair {
  id: string;
  privateKey: KeyObject;
}

function keyPair(id: string): Pair & { pem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { id, privateKey, pem: publicKey.export({ type: 'spki', format: 'pem' }) as string };
}

/** A pino logger whose lines the test can read. */
function capturedLogger(): { logger: pino.Logger; lines: () => Array<Record<string, unknown>> } {
  const text: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void text.push(line) });
  return { logger, lines: () => text.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('signed jobs', () => {
  const world = useTestWorld();
  let keysDir: string;
  const alice = keyPair('alice');
  const producers: Queue[] = [];

  beforeEach(async () => {
    keysDir = await mkdtemp(join(tmpdir(), 'stevedore-trusted-'));
    await writeFile(join(keysDir, 'alice.pub'), alice.pem);
  });
  afterEach(async () => {
    for (const p of producers.splice(0)) await p.close();
    await rm(keysDir, { recursive: true, force: true });
  });

  const signingClient = (key: Pair, queue = world.h.queue): StevedoreClient => {
    const client = new StevedoreClient({ redis: world.redis.url, queue, signingKey: key });
    world.h.clients.push(client);
    return client;
  };
  const plainProducer = (queue = world.h.queue): Queue => {
    const producer = new Queue(queue, { connection: { host: '127.0.0.1', port: world.redis.port } });
    producers.push(producer);
    return producer;
  };

  it('runs a job signed by a trusted key: from the client, and from plain BullMQ signing by the README wire format', async () => {
    await world.h.worker({ trustedKeysDir: keysDir });
    const reader = world.h.client();
    const { id } = await signingClient(alice).submit(busybox(['echo', 'signed hé']));
    const fromClient = await reader.waitForResult(id, { timeoutMs: 30_000 });
    expect(fromClient).toMatchObject({ state: 'Complete', exitCode: 0, stdout: { tail: 'signed hé\n' } });

    // Another language's producer: canonical JSON written by hand (keys sorted, no spaces),
    // node:crypto for Ed25519, BullMQ's Queue.add: nothing of Stevedore's.
    const jobId = 'foreign-1';
    const notAfter = Date.now() + 60_000;
    const spec = busybox(['sh', '-c', 'echo from elsewhere']);
    const specText = `{"command":${JSON.stringify(spec.command)},"image":${JSON.stringify(spec.image)},"imageTarball":${JSON.stringify(spec.imageTarball)}}`;
    const message = `{"context":"stevedore.job.v1","jobId":"${jobId}","notAfter":${notAfter},"queue":"${world.h.queue}","spec":${specText}}`;
    const sig = sign(null, Buffer.from(message, 'utf8'), alice.privateKey).toString('base64');
    const data = {
      ...(JSON.parse(specText) as object),
      'stevedore.signature': { v: 1, keyId: 'alice', jobId, queue: world.h.queue, notAfter, sig },
    };
    await plainProducer().add('run', data, { jobId, attempts: 3 });
    const foreign = await reader.waitForResult(jobId, { timeoutMs: 30_000 });
    expect(foreign).toMatchObject({ state: 'Complete', exitCode: 0, stdout: { tail: 'from elsewhere\n' } });
  });

  it('refuses unsigned, unknown-key, tampered, replayed and expired jobs as invalid: never retried, no container, logged with the key id', async () => {
    const other = `${world.h.queue}-other`;
    const log = capturedLogger();
    await world.h.worker({ trustedKeysDir: keysDir }, { logger: log.logger });
    await world.h.worker({ trustedKeysDir: keysDir, queue: other });
    const creates = await watchCreates(testDocker(), labelFilters(world.h.queue));
    const createsOther = await watchCreates(testDocker(), labelFilters(other));
    const reader = world.h.client();
    const producer = plainProducer();
    const job = busybox(['echo', 'must not run']);
    const signed = (jobId: string, queue = world.h.queue, notAfter?: number) =>
      signedJobData(job, { jobId, queue, notAfter }, alice);

    const unsigned = (await world.h.client().submit(job)).id;
    const unknown = (await signingClient(keyPair('mallory')).submit(job)).id;
    const tampered = signed('tampered');
    tampered.command = ['sh', '-c', 'echo owned'];
    await producer.add('run', tampered, { jobId: 'tampered', attempts: 3 });
    await producer.add('run', signed('original'), { jobId: 'replayed', attempts: 3 });
    // Expired: the clock has passed notAfter by the time a worker takes it.
    const past = Date.now() - 1_000;
    const expired = {
      ...job,
      'stevedore.signature': signJob(
        { spec: job, jobId: 'expired', queue: world.h.queue, notAfter: past },
        alice,
      ),
    };
    await producer.add('run', expired, { jobId: 'expired', attempts: 3 });
    await plainProducer(other).add('run', signed('moved'), { jobId: 'moved', attempts: 3 });

    const expectations: Array<[string, string, string | undefined]> = [
      [unsigned, 'job is not signed (no "stevedore.signature" in its data)', undefined],
      [unknown, 'signed by unknown key "mallory"', 'mallory'],
      ['tampered', 'changed after signing (tampered)', 'alice'],
      [
        'replayed',
        'signed for job id "original" but enqueued as "replayed" (replayed under another job id)',
        'alice',
      ],
      ['expired', `expired at ${new Date(past).toISOString()} (notAfter)`, 'alice'],
    ];
    for (const [id, text, keyId] of expectations) {
      const result = await reader.waitForResult(id, { timeoutMs: 20_000 });
      expect(result).toMatchObject({ state: 'Failed', reason: 'invalid', containerId: null });
      expect(result.error?.phase).toBe('validating');
      expect(result.error?.message).toContain(text);
      const line = log.lines().find((l) => l.jobId === id && String(l.msg).startsWith('refused job'));
      expect(line).toMatchObject({ keyId: keyId ?? null });
    }
    expect((await producer.getJob('tampered'))?.attemptsMade).toBe(1); // never retried

    const otherReader = new StevedoreClient({ redis: world.redis.url, queue: other });
    world.h.clients.push(otherReader);
    const moved = await otherReader.waitForResult('moved', { timeoutMs: 20_000 });
    expect(moved).toMatchObject({ state: 'Failed', reason: 'invalid', containerId: null });
    expect(moved.error?.message).toContain(
      `signed for queue "${world.h.queue}" but taken from queue "${other}" (replayed on another queue)`,
    );
    expect(await creates.stop()).toEqual([]);
    expect(await createsOther.stop()).toEqual([]);
  });

  it('rotates keys without a restart: a key added is trusted at once, a key removed no longer', async () => {
    const bob = keyPair('bob');
    await world.h.worker({ trustedKeysDir: keysDir });
    const reader = world.h.client();
    const early = (await signingClient(bob).submit(busybox(['true']))).id;
    expect((await reader.waitForResult(early, { timeoutMs: 20_000 })).error?.message).toContain(
      'signed by unknown key "bob"',
    );
    await writeFile(join(keysDir, 'bob.pub'), bob.pem);
    const next = (await signingClient(bob).submit(busybox(['echo', 'bob']))).id;
    expect(await reader.waitForResult(next, { timeoutMs: 30_000 })).toMatchObject({
      state: 'Complete',
      exitCode: 0,
    });
    await unlink(join(keysDir, 'alice.pub'));
    const retired = (await signingClient(alice).submit(busybox(['true']))).id;
    expect((await reader.waitForResult(retired, { timeoutMs: 20_000 })).error?.message).toContain(
      'signed by unknown key "alice"',
    );
  });

  it('a worker without trusted keys requires no signature: signed and unsigned jobs both run', async () => {
    await world.h.worker();
    const reader = world.h.client();
    const signed = (await signingClient(keyPair('anyone')).submit(busybox(['echo', 's']))).id;
    const plain = (await world.h.client().submit(busybox(['echo', 'p']))).id;
    expect(await reader.waitForResult(signed, { timeoutMs: 30_000 })).toMatchObject({
      state: 'Complete',
      stdout: { tail: 's\n' },
    });
    expect(await reader.waitForResult(plain, { timeoutMs: 30_000 })).toMatchObject({
      state: 'Complete',
      stdout: { tail: 'p\n' },
    });
  });

  it('a bad trusted key file stops the worker at start, naming the file', async () => {
    await writeFile(
      join(keysDir, 'broken.pub'),
      '-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n',
    );
    await expect(world.h.worker({ trustedKeysDir: keysDir })).rejects.toThrow(
      `STEVEDORE_TRUSTED_KEYS: bad key file ${join(keysDir, 'broken.pub')}`,
    );
  });
});
