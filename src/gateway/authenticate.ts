import type { KeyObject } from 'node:crypto';
import type { FramedSocket } from '../jobs/gateway/framed-socket.js';
import { FRAME, type Frame, parseJsonPayload } from '../jobs/gateway/frames.js';
import {
  type Auth,
  clientProof,
  type Hello,
  proofMatches,
  type Refusal,
  randomToken,
  requestSignatureRefusal,
  workerProof,
} from '../jobs/gateway/handshake.js';
import { parseAuth } from '../jobs/gateway/messages.js';
import type { GatewayPolicy } from '../policy/policy.js';
import type { GatewayJob } from './target.js';

export type { GatewayPolicy };

export interface AuthenticateContext {
  jobs: {
    find(jobId: string): GatewayJob | undefined;
    registration(jobId: string): Promise<{ attempt: number; workerId: string } | null>;
  };
  policy: GatewayPolicy;
  /** The trusted key of this id (read again when its directory changed), or undefined. */
  trustedKey?: (keyId: string) => KeyObject | undefined | Promise<KeyObject | undefined>;
}

export type Verdict = { job: GatewayJob; auth: Auth; who: string } | { refusal: Refusal };

/** Which job the hello names, or why it is not here. */
async function jobOf(hello: Hello, context: AuthenticateContext): Promise<GatewayJob | Refusal> {
  const job = context.jobs.find(hello.jobId);
  if (job && job.attempt === hello.attempt) return job;
  if (job) {
    return {
      code: 'other-attempt',
      message: `job ${hello.jobId} runs its attempt ${job.attempt} here, not attempt ${hello.attempt}: look the job up again`,
    };
  }
  const registered = await context.jobs.registration(hello.jobId);
  if (registered) {
    return {
      code: 'moved',
      message: `job ${hello.jobId} runs on worker ${registered.workerId} now (attempt ${registered.attempt}), not on this one: look the job up again`,
    };
  }
  return {
    code: 'not-running',
    message: `job ${hello.jobId} is not running (it finished, waits, or never existed): exec and forward reach running jobs only`,
  };
}

/** What the policy says of a request that proved itself. */
function policyRefusal(job: GatewayJob, auth: Auth, policy: GatewayPolicy): Refusal | null {
  const request = auth.request;
  if (request.op === 'forward') {
    if (!policy.forward)
      return { code: 'not-allowed', message: 'this worker policy does not allow port-forwarding' };
    if (!job.networkEnabled) {
      return {
        code: 'no-network',
        message: `job ${job.jobId} has no network: its loopback is its own and nothing outside can reach it; submit it with network.enabled to forward to it`,
      };
    }
    return null;
  }
  if (!policy.exec)
    return { code: 'not-allowed', message: 'this worker policy does not allow exec into jobs' };
  if (request.user !== undefined && policy.execUsers !== null && !policy.execUsers.includes(request.user)) {
    return {
      code: 'not-allowed',
      message: `this worker policy does not allow exec as user ${JSON.stringify(request.user)} (allowed: ${policy.execUsers.join(', ') || 'none'}; without --user the job's own user is used)`,
    };
  }
  return null;
}

/**
 * The handshake, worker side: say which job (or refuse), prove this worker knows the attempt's
 * secret, then check the client's proof, its signature when keys are trusted, and the policy.
 */
export async function authenticate(
  hello: Hello,
  connection: FramedSocket,
  context: AuthenticateContext,
  next: () => Promise<Frame | null>,
): Promise<Verdict> {
  const found = await jobOf(hello, context);
  if ('code' in found) return { refusal: found };
  const job = found;
  const serverNonce = randomToken();
  connection.sendJson(FRAME.challenge, { serverNonce, proof: workerProof(job.secret, hello, serverNonce) });
  const frame = await next();
  if (!frame) return { refusal: { code: 'bad-request', message: 'no auth frame came in time' } };
  let auth: Auth;
  try {
    if (frame.type !== FRAME.auth) throw new Error('the frame after the challenge must be auth');
    auth = parseAuth(parseJsonPayload(frame, 'auth'));
  } catch (error) {
    return {
      refusal: { code: 'bad-request', message: error instanceof Error ? error.message : String(error) },
    };
  }
  if (auth.request.op !== hello.op) {
    return {
      refusal: {
        code: 'bad-request',
        message: `hello said ${hello.op} but the request is ${auth.request.op}`,
      },
    };
  }
  if (!proofMatches(clientProof(job.secret, hello, serverNonce, auth.request), auth.proof)) {
    return {
      refusal: {
        code: 'bad-secret',
        message: `the request does not prove it knows the secret of job ${hello.jobId}'s attempt ${hello.attempt} (a stale or wrong secret): look the job up again`,
      },
    };
  }
  if (context.trustedKey) {
    const key = auth.signature ? await context.trustedKey(auth.signature.keyId) : undefined;
    const refusal = requestSignatureRefusal(hello, serverNonce, auth, () => key);
    if (refusal) return { refusal };
  }
  const refusal = policyRefusal(job, auth, context.policy);
  if (refusal) return { refusal };
  const who = auth.signature
    ? `key:${auth.signature.keyId}`
    : `address:${connection.socket.remoteAddress ?? '?'}`;
  return { job, auth, who };
}
