import { z } from 'zod';
import { InvalidSpecError, type SpecIssue } from './errors.js';
import { defaultPullPolicy, IMAGE_PULL_POLICIES, type ImagePullPolicy, parseImageRef } from './image-ref.js';
import { retrySchema } from './retry.js';
import { absolutePath, env, hasControlCharacter, ram, stdin } from './spec-fields.js';
import { SPEC_LIMITS } from './spec-limits.js';
import { jsonTextProblem, valueSizeProblem } from './spec-size.js';
import { runTimeout, timeoutsSchema } from './timeouts.js';

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
    /** A timeout for each phase (docs/job-spec.md#timeouts); `runSeconds` is `maxRunTimeSeconds` by its new name. */
    timeouts: timeoutsSchema.optional(),
    stopGraceSeconds: z
      .number()
      .min(0, 'must not be negative')
      .max(SPEC_LIMITS.stopGraceSeconds, `must be at most ${SPEC_LIMITS.stopGraceSeconds}`)
      .default(10),
    /** Which failures are worth another run, and how many (docs/retries.md); absent: as before rules. */
    retry: retrySchema.optional(),
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
  .strict()
  .superRefine((spec, ctx) => {
    const run = runTimeout(spec.timeouts, spec.maxRunTimeSeconds);
    if ('problem' in run)
      ctx.addIssue({ code: 'custom', path: ['timeouts', 'runSeconds'], message: run.problem });
  });

/** A job spec as submitted (JSON in the BullMQ job's data). */
export type JobSpecInput = z.input<typeof jobSpecSchema>;
/** A validated job spec with defaults filled in and sizes in bytes. */
export type JobSpec = z.output<typeof jobSpecSchema>;

/** A key as a message shows it: quoted as JSON when it holds a control character (a newline would forge a line). */
function shownSegment(segment: PropertyKey): string {
  const text = String(segment);
  return hasControlCharacter(text, { nul: true }) ? JSON.stringify(text) : text;
}

/** `retry.rules[3].onExitCodes.values[0]`: list indexes in brackets, keys after dots. */
function shownPath(path: readonly PropertyKey[]): string {
  return path
    .map((segment, i) =>
      typeof segment === 'number' ? `[${segment}]` : `${i === 0 ? '' : '.'}${shownSegment(segment)}`,
    )
    .join('');
}

function toIssues(error: z.ZodError): SpecIssue[] {
  return error.issues.map((issue) => {
    const path = shownPath(issue.path);
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
