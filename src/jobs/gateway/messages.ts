import { z } from 'zod';
import type { Auth, Challenge, Exit, Hello, Refusal } from './handshake.js';

/**
 * The shapes of the gateway's JSON frames, checked on arrival: a peer's bytes are untrusted until
 * its proof is checked, and a malformed frame ends the session with a message that names the field.
 */
const token = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be 32 bytes in base64url');
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const noNul = (what: string) =>
  z.string().refine((s) => !s.includes('\0'), `${what} must not contain NUL bytes`);

const helloSchema = z
  .object({
    v: z.literal(1),
    jobId: z.string().min(1).max(1024),
    attempt: z.number().int().min(1),
    op: z.enum(['exec', 'forward']),
    clientNonce: token,
  })
  .strict();

const challengeSchema = z.object({ serverNonce: token, proof: z.string().max(128) }).strict();

const execRequestSchema = z
  .object({
    op: z.literal('exec'),
    command: z.array(noNul('an argument')).min(1, 'must name a program').max(4096),
    user: noNul('user').min(1).max(256).optional(),
    workdir: noNul('workdir')
      .refine((p) => p.startsWith('/'), 'must be an absolute path')
      .optional(),
    env: z.record(z.string().regex(ENV_NAME, 'is not a valid variable name'), noNul('a value')).optional(),
    stdin: z.boolean(),
    tty: z
      .object({ cols: z.number().int().min(1).max(10_000), rows: z.number().int().min(1).max(10_000) })
      .strict()
      .optional(),
  })
  .strict();

const forwardRequestSchema = z
  .object({ op: z.literal('forward'), port: z.number().int().min(1).max(65_535) })
  .strict();

const authSchema = z
  .object({
    request: z.discriminatedUnion('op', [execRequestSchema, forwardRequestSchema]),
    proof: z.string().max(128),
    signature: z
      .object({ keyId: z.string().min(1).max(128), sig: z.string().max(128) })
      .strict()
      .optional(),
  })
  .strict();

const refusalSchema = z.object({ code: z.string(), message: z.string() }).strict();

const exitSchema = z.union([
  z.object({ exitCode: z.number().int().min(0).max(255) }).strict(),
  z.object({ exitCode: z.null(), reason: z.enum(['job-ended', 'error']), message: z.string() }).strict(),
]);

const resizeSchema = z
  .object({ cols: z.number().int().min(1).max(10_000), rows: z.number().int().min(1).max(10_000) })
  .strict();

/** A gateway frame that is not what it must be: the session ends with this message. */
export class GatewayMessageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GatewayMessageError';
  }
}

function parser<T>(schema: z.ZodType<T>, what: string): (value: unknown) => T {
  return (value) => {
    const parsed = schema.safeParse(value);
    if (parsed.success) return parsed.data;
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(frame)'} ${i.message}`);
    throw new GatewayMessageError(`gateway ${what} is malformed: ${problems.join('; ')}`);
  };
}

export const parseHello = parser<Hello>(helloSchema, 'hello');
export const parseChallenge = parser<Challenge>(challengeSchema, 'challenge');
export const parseAuth = parser<Auth>(authSchema, 'auth');
export const parseRefusal = parser(refusalSchema, 'refusal') as (value: unknown) => Refusal;
export const parseExit = parser<Exit>(exitSchema, 'exit');
export const parseResize = parser(resizeSchema, 'resize');
