import {
  createHash,
  createHmac,
  type KeyObject,
  randomBytes,
  sign,
  timingSafeEqual,
  verify,
} from 'node:crypto';
import { canonicalJson } from '../canonical-json.js';

/**
 * Mutual authentication for a gateway session. Each attempt of a running job has a random secret
 * that only Redis (beside the job's gateway registration), the worker running it, and clients
 * that read Redis know. The worker proves it knows the secret first, so a client that reached
 * the wrong port learns so before it sends its request; then the client proves it, over the
 * request it makes. Nonces from both sides make every proof good for one session only.
 */
export const GATEWAY_CONTEXT = 'stevedore.gateway.v1';

export type GatewayOperation = 'exec' | 'forward';

export interface Hello {
  v: 1;
  jobId: string;
  attempt: number;
  op: GatewayOperation;
  clientNonce: string;
}

export interface Challenge {
  serverNonce: string;
  /** HMAC-SHA256 by the attempt's secret over the session's transcript, as the worker. */
  proof: string;
}

/** A command to run in a running job's container: what `stevedore exec` asks, and what the executor runs. */
export interface ExecCommand {
  command: string[];
  /** Name or uid[:gid]; the container's own user when absent. */
  user?: string;
  workdir?: string;
  env?: Record<string, string>;
  /** Keep stdin open (`-i`); without it the command reads end of file at once. */
  stdin: boolean;
  /** A terminal of this size (`-t`); stdout and stderr then arrive as one stream. */
  tty?: { cols: number; rows: number };
}

export interface ExecRequest extends ExecCommand {
  op: 'exec';
}

export interface ForwardRequest {
  op: 'forward';
  port: number;
}

export type GatewayRequest = ExecRequest | ForwardRequest;

/** A request signed by a trusted key, bound to this session by the worker's nonce. */
export interface RequestSignature {
  keyId: string;
  /** Ed25519 signature, base64. */
  sig: string;
}

export interface Auth {
  request: GatewayRequest;
  /** HMAC-SHA256 by the attempt's secret over the transcript and the request, as the client. */
  proof: string;
  signature?: RequestSignature;
}

/** Why a session did not open. Each code has one message that says what to do. */
export type RefusalCode =
  | 'not-running'
  | 'other-attempt'
  | 'moved'
  | 'bad-secret'
  | 'unsigned'
  | 'bad-signature'
  | 'not-allowed'
  | 'no-network'
  | 'unreachable'
  | 'bad-request'
  /** The worker failed at the session itself (a bug, Redis answering an error): the message names the phase. */
  | 'error';

export interface Refusal {
  code: RefusalCode;
  message: string;
}

/** How an exec ended: an exit code, or why there is none. */
export type Exit = { exitCode: number } | { exitCode: null; reason: 'job-ended' | 'error'; message: string };

/** 32 random bytes, base64url: a secret per attempt, or a nonce per session. */
export const randomToken = (): string => randomBytes(32).toString('base64url');

function transcript(role: 'worker' | 'client', hello: Hello, serverNonce: string): string {
  return [
    GATEWAY_CONTEXT,
    role,
    hello.jobId,
    String(hello.attempt),
    hello.op,
    hello.clientNonce,
    serverNonce,
  ].join('\n');
}

const hmac = (secret: string, text: string): string =>
  createHmac('sha256', Buffer.from(secret, 'base64url')).update(text).digest('base64url');

const requestDigest = (request: GatewayRequest): string =>
  createHash('sha256').update(canonicalJson(request)).digest('base64url');

/** The worker's proof for a session. */
export const workerProof = (secret: string, hello: Hello, serverNonce: string): string =>
  hmac(secret, transcript('worker', hello, serverNonce));

/** The client's proof for a session, covering its request. */
export const clientProof = (
  secret: string,
  hello: Hello,
  serverNonce: string,
  request: GatewayRequest,
): string => hmac(secret, `${transcript('client', hello, serverNonce)}\n${requestDigest(request)}`);

/** Whether a proof received equals the one expected, in constant time. */
export function proofMatches(expected: string, received: unknown): boolean {
  if (typeof received !== 'string') return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(received);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The exact bytes a request signature covers: the session (both nonces) and the request. */
function signedBytes(hello: Hello, serverNonce: string, request: GatewayRequest): Buffer {
  return Buffer.from(
    canonicalJson({
      context: GATEWAY_CONTEXT,
      jobId: hello.jobId,
      attempt: hello.attempt,
      clientNonce: hello.clientNonce,
      serverNonce,
      request,
    }),
  );
}

export function signRequest(
  hello: Hello,
  serverNonce: string,
  request: GatewayRequest,
  key: { id: string; privateKey: KeyObject },
): RequestSignature {
  return {
    keyId: key.id,
    sig: sign(null, signedBytes(hello, serverNonce, request), key.privateKey).toString('base64'),
  };
}

/** Null when a trusted key signed this request for this session; else the refusal. */
export function requestSignatureRefusal(
  hello: Hello,
  serverNonce: string,
  auth: Auth,
  publicKey: (keyId: string) => KeyObject | undefined,
): Refusal | null {
  const signature = auth.signature;
  if (!signature) {
    return {
      code: 'unsigned',
      message:
        'this worker accepts gateway requests only when signed by a trusted key (STEVEDORE_TRUSTED_KEYS); pass a signing key',
    };
  }
  const key = publicKey(signature.keyId);
  if (!key) {
    return {
      code: 'bad-signature',
      message: `signed by unknown key "${signature.keyId}": this worker does not trust it; sign with a trusted key`,
    };
  }
  const ok = verify(
    null,
    signedBytes(hello, serverNonce, auth.request),
    key,
    Buffer.from(signature.sig, 'base64'),
  );
  return ok
    ? null
    : {
        code: 'bad-signature',
        message: `signature by key "${signature.keyId}" does not cover this request and session; sign it again`,
      };
}
