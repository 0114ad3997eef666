import { createPrivateKey, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import { CanonicalEncodingError, canonicalJson } from './canonical-json.js';
import { coerceError, ValidationError } from './errors.js';

/**
 * Signed jobs (docs/signed-jobs.md): Ed25519 over the RFC 8785 canonical JSON of
 * `{ context, jobId, notAfter, queue, spec }`. The signature travels in job data under one
 * reserved key beside the spec's own fields, so the spec stays what it is and any BullMQ
 * producer can add it.
 */
export const SIGNATURE_FIELD = 'stevedore.signature';
/** Names what the bytes are, so a signature over a Stevedore job can never pass for one over anything else. */
export const SIGNATURE_CONTEXT = 'stevedore.job.v1';
/** How long a signature lasts when the producer names no `notAfter`: a day of queueing and retries. */
export const DEFAULT_SIGNATURE_LIFETIME_MS = 24 * 3600 * 1000;
/** Key ids are file base names (`<id>.key`, `<id>.pub`) and appear in logs: no path characters. */
const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const ED25519_SIGNATURE_BYTES = 64;

export interface SigningKey {
  id: string;
  /** PKCS#8 PEM text (what `stevedore keygen` writes) or a KeyObject. */
  privateKey: string | KeyObject;
}

/** What travels under SIGNATURE_FIELD. jobId, queue and notAfter are also inside the signed bytes. */
export interface JobSignature {
  v: 1;
  keyId: string;
  jobId: string;
  queue: string;
  /** Unix time in milliseconds after which no worker may take the job. */
  notAfter: number;
  /** The 64-byte Ed25519 signature, base64 (RFC 4648 §4, with padding). */
  sig: string;
}

export interface SignedFields {
  spec: unknown;
  jobId: string;
  queue: string;
  notAfter: number;
}

export function keyIdProblem(id: string): string | undefined {
  return KEY_ID.test(id)
    ? undefined
    : 'must be 1–128 characters of letters, digits, ".", "_" and "-", starting with a letter or digit';
}

function ed25519(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519')
    throw new ValidationError(`${what} is a ${key.asymmetricKeyType ?? key.type} key, not Ed25519`);
  return key;
}

/** The private key of a SigningKey as a KeyObject; ValidationError when it is not an Ed25519 private key. */
export function toPrivateKey(key: SigningKey): KeyObject {
  const problem = keyIdProblem(key.id);
  if (problem) throw new ValidationError(`signingKey.id ${JSON.stringify(key.id)} ${problem}`);
  if (typeof key.privateKey !== 'string') {
    if (key.privateKey.type !== 'private')
      throw new ValidationError(`signingKey.privateKey is a ${key.privateKey.type} key, not a private key`);
    return ed25519(key.privateKey, 'signingKey.privateKey');
  }
  try {
    return ed25519(createPrivateKey(key.privateKey), 'signingKey.privateKey');
  } catch (error) {
    if (error instanceof ValidationError) throw error;
    throw new ValidationError(
      `signingKey.privateKey is not a private key in PEM (${coerceError(error).message}); use the .key file \`stevedore keygen\` wrote`,
    );
  }
}

/** An Ed25519 public key from SPKI PEM text; throws ValidationError saying what is wrong. */
export function toPublicKey(pem: string): KeyObject {
  try {
    return ed25519(createPublicKey(pem), 'the key');
  } catch (error) {
    if (error instanceof ValidationError) throw error;
    throw new ValidationError(`not a public key in PEM (${coerceError(error).message})`);
  }
}

/** The exact bytes a job's signature covers. */
export function signedMessage(fields: SignedFields): Buffer {
  const { spec, jobId, queue, notAfter } = fields;
  return Buffer.from(canonicalJson({ context: SIGNATURE_CONTEXT, jobId, notAfter, queue, spec }), 'utf8');
}

/** Signs a job; `fields.spec` must be the spec exactly as it will travel (JSON values only). */
export function signJob(fields: SignedFields, key: { id: string; privateKey: KeyObject }): JobSignature {
  const sig = sign(null, signedMessage(fields), key.privateKey).toString('base64');
  return { v: 1, keyId: key.id, jobId: fields.jobId, queue: fields.queue, notAfter: fields.notAfter, sig };
}

/**
 * The job data of a signed job: the spec as it will travel, with its signature beside it.
 * `notAfter` (Date or Unix ms) defaults to DEFAULT_SIGNATURE_LIFETIME_MS from now.
 */
export function signedJobData(
  spec: object,
  job: { jobId: string; queue: string; notAfter?: Date | number },
  key: { id: string; privateKey: KeyObject },
  now = Date.now(),
): Record<string, unknown> {
  const notAfter = job.notAfter === undefined ? now + DEFAULT_SIGNATURE_LIFETIME_MS : Number(job.notAfter);
  if (!Number.isSafeInteger(notAfter) || notAfter <= now)
    throw new ValidationError(`notAfter ${String(job.notAfter)} must be a time in the future`);
  // Sign what the worker will read back: BullMQ stores JSON, which drops undefined fields.
  const travelling = JSON.parse(JSON.stringify(spec)) as Record<string, unknown>;
  const signature = signJob({ spec: travelling, jobId: job.jobId, queue: job.queue, notAfter }, key);
  return { ...travelling, [SIGNATURE_FIELD]: signature };
}

/** Job data split into the spec (every other key) and what SIGNATURE_FIELD holds, if anything. */
export function splitJobData(data: unknown): { spec: unknown; signature: unknown } {
  if (typeof data !== 'object' || data === null || Array.isArray(data) || !(SIGNATURE_FIELD in data))
    return { spec: data, signature: undefined };
  const { [SIGNATURE_FIELD]: signature, ...spec } = data as Record<string, unknown>;
  return { spec, signature };
}

const SIGNATURE_KEYS = ['v', 'keyId', 'jobId', 'queue', 'notAfter', 'sig'];

/** What is wrong with the shape of a signature field, or undefined when it is a JobSignature. */
export function signatureShapeProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'must be an object';
  const record = value as Record<string, unknown>;
  const unknown = Object.keys(record).filter((k) => !SIGNATURE_KEYS.includes(k));
  if (unknown.length > 0) return `has unknown field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}`;
  if (record.v !== 1) return 'v must be 1 (the only wire format version)';
  if (typeof record.keyId !== 'string') return 'keyId must be a string';
  const keyProblem = keyIdProblem(record.keyId);
  if (keyProblem) return `keyId ${keyProblem}`;
  if (typeof record.jobId !== 'string') return 'jobId must be a string';
  if (typeof record.queue !== 'string') return 'queue must be a string';
  if (typeof record.notAfter !== 'number' || !Number.isSafeInteger(record.notAfter) || record.notAfter < 0)
    return 'notAfter must be a whole number of milliseconds since 1970-01-01T00:00:00Z';
  if (typeof record.sig !== 'string') return 'sig must be a string';
  const bytes = Buffer.from(record.sig, 'base64');
  if (bytes.length !== ED25519_SIGNATURE_BYTES || bytes.toString('base64') !== record.sig)
    return `sig must be the ${ED25519_SIGNATURE_BYTES}-byte signature in padded base64`;
  return undefined;
}

export type SignatureRefusal =
  | 'unsigned'
  | 'malformed'
  | 'unknown-key'
  | 'tampered'
  | 'wrong-job-id'
  | 'wrong-queue'
  | 'expired';

export type SignatureVerdict =
  | { ok: true; keyId: string; spec: unknown }
  | { ok: false; refusal: SignatureRefusal; keyId: string | null; message: string };

export interface VerifyContext {
  /** The job's id as BullMQ holds it, and the queue it was taken from. */
  jobId: string;
  queue: string;
  /** Unix time in milliseconds. */
  now: number;
  publicKey: (keyId: string) => KeyObject | undefined;
}

/**
 * Whether job data carries a valid signature by a trusted key for this job id and queue, not
 * expired. The signature is checked against the fields it names before they are compared with
 * the job's, so a changed spec reads as tampering and a moved job as a replay.
 */
export function verifyJobSignature(data: unknown, context: VerifyContext): SignatureVerdict {
  const refuse = (refusal: SignatureRefusal, keyId: string | null, message: string): SignatureVerdict => ({
    ok: false,
    refusal,
    keyId,
    message,
  });
  const { spec, signature } = splitJobData(data);
  if (signature === undefined)
    return refuse(
      'unsigned',
      null,
      `job is not signed (no "${SIGNATURE_FIELD}" in its data), and this worker runs only jobs signed by a trusted key; submit it with a signing key`,
    );
  const shape = signatureShapeProblem(signature);
  if (shape) {
    const keyId = (signature as { keyId?: unknown } | null)?.keyId;
    return refuse(
      'malformed',
      typeof keyId === 'string' ? keyId : null,
      `signature "${SIGNATURE_FIELD}" is malformed: ${shape}; sign the job as docs/signed-jobs.md describes`,
    );
  }
  const signed = signature as JobSignature;
  const publicKey = context.publicKey(signed.keyId);
  if (!publicKey)
    return refuse(
      'unknown-key',
      signed.keyId,
      `signed by unknown key "${signed.keyId}": this worker trusts no ${signed.keyId}.pub; add that file to the trusted keys directory or sign with a trusted key`,
    );
  let message: Buffer;
  try {
    message = signedMessage({ spec, jobId: signed.jobId, queue: signed.queue, notAfter: signed.notAfter });
  } catch (error) {
    if (!(error instanceof CanonicalEncodingError)) throw error;
    return refuse(
      'malformed',
      signed.keyId,
      `the spec has no canonical encoding (${error.message}), so no signature can cover it`,
    );
  }
  if (!verify(null, message, publicKey, Buffer.from(signed.sig, 'base64')))
    return refuse(
      'tampered',
      signed.keyId,
      `signature by key "${signed.keyId}" does not match the job: its spec, job id, queue or expiry changed after signing (tampered); submit it again from the producer`,
    );
  if (signed.jobId !== context.jobId)
    return refuse(
      'wrong-job-id',
      signed.keyId,
      `signed for job id ${JSON.stringify(signed.jobId)} but enqueued as ${JSON.stringify(context.jobId)} (replayed under another job id)`,
    );
  if (signed.queue !== context.queue)
    return refuse(
      'wrong-queue',
      signed.keyId,
      `signed for queue ${JSON.stringify(signed.queue)} but taken from queue ${JSON.stringify(context.queue)} (replayed on another queue)`,
    );
  if (context.now > signed.notAfter)
    return refuse(
      'expired',
      signed.keyId,
      `signature by key "${signed.keyId}" expired at ${new Date(signed.notAfter).toISOString()} (notAfter), before this worker took the job; submit it again with a later notAfter`,
    );
  return { ok: true, keyId: signed.keyId, spec };
}
