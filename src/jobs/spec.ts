import { z } from 'zod';
import { InvalidSpecError, type SpecIssue } from './errors.js';
import { defaultPullPolicy, IMAGE_PULL_POLICIES, type ImagePullPolicy, parseImageRef } from './image-ref.js';
import { jsonTextProblem, valueSizeProblem } from './spec-size.js';

/** Limits that keep one job from filling Redis or the host; each error message names its limit. */
export const SPEC_LIMITS = {
  imageChars: 512,
  commandArgs: 4096,
  argBytes: 128 * 1024,
  envVars: 1024,
  envValueBytes: 32 * 1024,
  envTotalBytes: 256 * 1024,
  mounts: 128,
  vcpus: 1024,
  ramBytes: 4 * 1024 ** 4, // 4 TiB
  gpus: 64,
  stdinBytes: 8 * 1024 * 1024, // stdin travels inside the job in Redis
  labels: 64,
  labelChars: 1024,
  maxRunTimeSeconds: 30 * 24 * 3600,
  stopGraceSeconds: 3600,
  /** The whole spec as JSON: room for the largest stdin (8 MiB, 10.7 MiB as base64) and the rest. */
  specBytes: 12 * 1024 * 1024,
  /** Every key and string value: each field's own caps add up to about 7,000. */
  specStrings: 10_000,
  /** Every array item and object field: the fields' own caps add up to about 7,500. */
  specElements: 20_000,
  /** Objects and arrays inside each other; a real spec nests 4 deep. */
  specDepth: 16,
} as const;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const RAM_TEXT = /^(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|K|M|G|T|B)?$/;
const RAM_UNITS: Record<string, number> = {
  B: 1,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  Ti: 1024 ** 4,
};
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Whether `text` holds a control character (C0 or DEL; NUL counts only when `nul`, since paths
 * refuse it with a message of its own). No runtime can carry one in a path: mounts are written
 * out as lines and option text in places (Apptainer's bind list, mount tables), and no real path
 * needs one. The runtimes' own separators (`,` `:` `=`) are theirs to escape or refuse.
 */
function hasControlCharacter(text: string, { nul }: { nul: boolean }): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && (nul || c !== 0)) || c === 0x7f) return true;
  }
  return false;
}

/** An absolute path; `subject` names it in messages when the path is a record key. */
const absolutePath = (subject = '') =>
  z
    .string()
    .min(1, `${subject}must not be empty`)
    .refine((p) => p.startsWith('/'), `${subject}must be an absolute path (start with /)`)
    .refine((p) => !p.split('/').includes('..'), `${subject}must not contain ".." segments`)
    .refine((p) => !p.includes('\0'), `${subject}must not contain NUL bytes`)
    .refine(
      (p) => !hasControlCharacter(p, { nul: false }),
      `${subject}must not contain control characters (such as a newline)`,
    );

/** "512Mi", "2Gi", "1.5G" or a byte count, as bytes. */
export function parseRam(value: number | string): number | undefined {
  if (typeof value === 'number') return value;
  const match = RAM_TEXT.exec(value.trim());
  if (!match) return undefined;
  return Math.floor(Number(match[1]) * (RAM_UNITS[match[2] ?? 'B'] ?? 1));
}

const ram = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const bytes = parseRam(value);
  if (bytes === undefined || !Number.isFinite(bytes)) {
    ctx.addIssue({ code: 'custom', message: 'must be a byte count or a size such as "512Mi" or "2Gi"' });
    return z.NEVER;
  }
  if (!Number.isInteger(bytes) || bytes <= 0) {
    ctx.addIssue({ code: 'custom', message: 'must be a positive whole number of bytes' });
    return z.NEVER;
  }
  if (bytes > SPEC_LIMITS.ramBytes) {
    ctx.addIssue({ code: 'custom', message: `must be at most 4Ti (${SPEC_LIMITS.ramBytes} bytes)` });
    return z.NEVER;
  }
  return bytes;
});

const env = z
  .record(
    z
      .string()
      .regex(ENV_NAME, 'is not a valid variable name (letters, digits and _, not starting with a digit)'),
    z
      .string()
      .refine((v) => !v.includes('\0'), 'must not contain NUL bytes')
      .refine(
        (v) => Buffer.byteLength(v) <= SPEC_LIMITS.envValueBytes,
        `is longer than ${SPEC_LIMITS.envValueBytes} bytes`,
      ),
  )
  .refine(
    (e) => Object.keys(e).length <= SPEC_LIMITS.envVars,
    `has more than ${SPEC_LIMITS.envVars} variables`,
  )
  .refine(
    (e) =>
      Object.entries(e).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v) + 2, 0) <=
      SPEC_LIMITS.envTotalBytes,
    `is larger than ${SPEC_LIMITS.envTotalBytes} bytes in total`,
  );

const stdin = z.union([
  z
    .string()
    .refine(
      (s) => Buffer.byteLength(s) <= SPEC_LIMITS.stdinBytes,
      `is larger than ${SPEC_LIMITS.stdinBytes} bytes`,
    ),
  z
    .object({
      base64: z
        .string()
        .refine((s) => BASE64.test(s), 'is not valid base64')
        .refine(
          (s) => (s.length / 4) * 3 <= SPEC_LIMITS.stdinBytes,
          `decodes to more than ${SPEC_LIMITS.stdinBytes} bytes`,
        ),
    })
    .strict(),
]);

export const jobSpecSchema = z
  .object({
    image: z
      .string()
      .min(1, 'must not be empty')
      .max(SPEC_LIMITS.imageChars, `must be at most ${SPEC_LIMITS.imageChars} characters`)
      .refine((s) => !/\s/.test(s), 'must not contain whitespace'),
    imageTarball: absolutePath().optional(),
    /** Absent: `always` for a `latest` or missing tag, else `if-not-present` (see defaultPullPolicy). */
    imagePullPolicy: z.enum(IMAGE_PULL_POLICIES).optional(),
    command: z
      .array(
        z
          .string()
          .refine((s) => !s.includes('\0'), 'must not contain NUL bytes')
          .refine(
            (s) => Buffer.byteLength(s) <= SPEC_LIMITS.argBytes,
            `is longer than ${SPEC_LIMITS.argBytes} bytes`,
          ),
      )
      .min(1, 'must have at least one element (the program to run)')
      .max(SPEC_LIMITS.commandArgs, `must have at most ${SPEC_LIMITS.commandArgs} elements`)
      .refine((c) => c[0] !== '', 'must not start with an empty program name'),
    env: env.default({}),
    workingDir: absolutePath().optional(),
    mounts: z
      .record(
        absolutePath('container path ').refine((p) => p !== '/', 'container path must not be /'),
        z.object({ hostPath: absolutePath(), readOnly: z.boolean().default(true) }).strict(),
      )
      .refine(
        (m) => Object.keys(m).length <= SPEC_LIMITS.mounts,
        `has more than ${SPEC_LIMITS.mounts} mounts`,
      )
      .default({}),
    resources: z
      .object({
        vcpus: z
          .number()
          .positive('must be greater than 0')
          .max(SPEC_LIMITS.vcpus, `must be at most ${SPEC_LIMITS.vcpus}`)
          .optional(),
        ram: ram.optional(),
        gpus: z
          .object({
            stack: z.enum(['cuda', 'rocm']),
            count: z
              .number()
              .int('must be a whole number')
              .min(1, 'must be at least 1')
              .max(SPEC_LIMITS.gpus),
          })
          .strict()
          .optional(),
      })
      .strict()
      .default({}),
    network: z
      .object({ enabled: z.boolean().default(false), mode: z.string().min(1).max(256).optional() })
      .strict()
      .default({ enabled: false }),
    stdin: stdin.optional(),
    maxRunTimeSeconds: z
      .number()
      .positive('must be greater than 0')
      .max(SPEC_LIMITS.maxRunTimeSeconds, `must be at most ${SPEC_LIMITS.maxRunTimeSeconds} (30 days)`)
      .optional(),
    stopGraceSeconds: z
      .number()
      .min(0, 'must not be negative')
      .max(SPEC_LIMITS.stopGraceSeconds, `must be at most ${SPEC_LIMITS.stopGraceSeconds}`)
      .default(10),
    /** Run the command under the runtime's init (signals forwarded, zombies reaped); false: the command is PID 1. */
    init: z.boolean().default(true),
    runtime: z.enum(['docker', 'podman', 'singularity']).optional(),
    labels: z
      .record(
        z.string().min(1).max(SPEC_LIMITS.labelChars),
        z.string().max(SPEC_LIMITS.labelChars, `must be at most ${SPEC_LIMITS.labelChars} characters`),
      )
      .refine(
        (l) => Object.keys(l).length <= SPEC_LIMITS.labels,
        `has more than ${SPEC_LIMITS.labels} labels`,
      )
      .default({}),
  })
  .strict();

/** A job spec as submitted (JSON in the BullMQ job's data). */
export type JobSpecInput = z.input<typeof jobSpecSchema>;
/** A validated job spec with defaults filled in and sizes in bytes. */
export type JobSpec = z.output<typeof jobSpecSchema>;

/** A key as a message shows it: quoted as JSON when it holds a control character (a newline would forge a line). */
function shownSegment(segment: PropertyKey): string {
  const text = String(segment);
  return hasControlCharacter(text, { nul: true }) ? JSON.stringify(text) : text;
}

function toIssues(error: z.ZodError): SpecIssue[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(shownSegment).join('.');
    if (issue.code === 'unrecognized_keys') {
      return {
        path,
        message: `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')} (a typo?)`,
      };
    }
    if (issue.code === 'invalid_type') {
      const received = /^Invalid input: expected \w+, received (\w+)/.exec(issue.message)?.[1];
      if (received === undefined) return { path, message: issue.message }; // our own wording
      if (received === 'undefined') return { path, message: 'is required' };
      const article = issue.expected === 'array' || issue.expected === 'object' ? 'an' : 'a';
      return { path, message: `must be ${article} ${issue.expected}, not ${received}` };
    }
    if (issue.code === 'invalid_value') {
      return { path, message: `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}` };
    }
    if (issue.code === 'invalid_key') {
      return { path, message: `key ${issue.issues.map((i) => i.message).join('; ')}` };
    }
    return { path, message: issue.message };
  });
}

/**
 * Why job data is too big as a whole, before any field is looked at: the per-field caps alone
 * would let one job carry half a gigabyte of arguments, and a walk of all of it would hold the
 * worker's event loop for seconds. Stops counting at the first limit.
 */
export function jobDataProblem(data: unknown): string | null {
  return valueSizeProblem(data, SPEC_LIMITS);
}

/** The same bounds on job data as the JSON text BullMQ stores, checked before it is parsed. */
export function jobTextProblem(text: string): string | null {
  return jsonTextProblem(text, SPEC_LIMITS);
}

/** Validates a job spec; throws InvalidSpecError listing every problem at once. */
export function parseJobSpec(input: unknown): JobSpec {
  const tooBig = jobDataProblem(input);
  if (tooBig) throw new InvalidSpecError([{ path: '', message: tooBig }]);
  const parsed = jobSpecSchema.safeParse(input);
  if (!parsed.success) throw new InvalidSpecError(toIssues(parsed.error));
  return parsed.data;
}

/** The stdin bytes of a spec, or undefined when it has none. */
export function stdinBytes(spec: JobSpec): Buffer | undefined {
  if (spec.stdin === undefined) return undefined;
  return typeof spec.stdin === 'string' ? Buffer.from(spec.stdin) : Buffer.from(spec.stdin.base64, 'base64');
}

/**
 * The pull policy a run uses: the spec's, else the default for its reference. An image from a
 * tarball is loaded when absent, whatever its tag: it comes from no registry.
 */
export function pullPolicyOf(
  spec: Pick<JobSpec, 'image' | 'imageTarball' | 'imagePullPolicy'>,
): ImagePullPolicy {
  if (spec.imagePullPolicy) return spec.imagePullPolicy;
  if (spec.imageTarball) return 'if-not-present';
  const ref = parseImageRef(spec.image);
  // A malformed reference fails when the image is looked for, with the reason `image`.
  return typeof ref === 'string' ? 'if-not-present' : defaultPullPolicy(ref);
}
