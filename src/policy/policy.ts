import { z } from 'zod';
import { RETRY_LIMITS } from '../jobs/retry.js';
import { parseRam } from '../jobs/spec-fields.js';
import { SPEC_LIMITS } from '../jobs/spec-limits.js';
import { MAX_TIMEOUT_SECONDS, TIMEOUT_NAMES, type TimeoutName } from '../jobs/timeouts.js';

/**
 * The worker policy (STEVEDORE_POLICY): what jobs on this worker may ask for. Every key has a
 * default, and the defaults are the safe choice: no host paths, no tarballs, no host network.
 */

/** A job with no `ram` gets this, so it cannot take the host's memory (lowered to maxRam when that is smaller). */
export const DEFAULT_RAM_BYTES = 1024 ** 3; // 1 GiB
/** A job with no run timeout is stopped after this, and none may ask for more (timeouts.runSeconds). */
export const DEFAULT_MAX_RUN_TIME_SECONDS = 24 * 3600;
/** Processes (and threads) one job may have: bounds a fork bomb, well above what real jobs run. */
export const DEFAULT_PIDS_LIMIT = 4096;
/** Output kept on disk per stream per job; past it bytes are counted, not written. */
export const DEFAULT_MAX_OUTPUT_BYTES = 1024 ** 3; // 1 GiB
/**
 * Reruns one budget of a job's `retry` may grant on this worker: as AWS Batch caps a job at 10
 * attempts, so a mistyped limit cannot keep a failing job running for days.
 */
export const DEFAULT_MAX_RETRY_LIMIT = 10;
/** The same for `retry.infraLimit`. */
export const DEFAULT_MAX_INFRA_LIMIT = 10;
/** Docker's default network modes: a private namespace on the default bridge. */
export const DEFAULT_NETWORK_MODES: readonly string[] = ['default', 'bridge'];

export interface AllowedPath {
  /** Absolute, normalized (no `//`, no trailing `/`); resolved on the host by the worker at start. */
  hostPath: string;
  readWrite: boolean;
}

export interface Policy {
  /** Glob patterns of allowed image references; `**` alone allows every image. */
  images: string[];
  /**
   * Whether a job may name its image by the engine's id (`sha256:<id>`, a bare hex prefix):
   * such a reference runs any image the engine holds, whatever `images` says of names. Default off.
   */
  allowImageIds: boolean;
  mounts: AllowedPath[];
  imageTarballs: AllowedPath[];
  networkModes: string[];
  resources: {
    maxVcpus?: number;
    maxRam?: number;
    maxGpus?: number;
    defaultVcpus?: number;
    defaultRam: number;
  };
  /**
   * Each timeout's cap (`max`: a spec over it is denied) and the value a job that names none gets
   * (`default`; none: no limit). The run timeout always has both: a job never runs unbounded.
   */
  timeouts: PolicyTimeouts;
  pidsLimit: number;
  maxOutputBytes: number;
  /** Caps on a job's `retry` budgets: `retry.limit` (and every rule's own limit), `retry.infraLimit`. */
  retry: { maxLimit: number; maxInfraLimit: number };
  /** What the exec gateway (STEVEDORE_GATEWAY) may do in this worker's jobs. */
  gateway: GatewayPolicy;
}

/** The policy's `gateway` section: what exec and port-forward sessions may do (when the gateway is on). */
export interface GatewayPolicy {
  exec: boolean;
  forward: boolean;
  /**
   * Users an exec may name (`--user`), as written (a name or `uid[:gid]`); null: any. An exec
   * that names none runs as the job's own user, which is always allowed.
   */
  execUsers: readonly string[] | null;
}

export interface TimeoutBound {
  max?: number;
  default?: number;
}

export type PolicyTimeouts = Record<TimeoutName, TimeoutBound> & {
  runSeconds: Required<TimeoutBound>;
};

/** A policy file that cannot be used; each issue names its key. */
export class PolicyError extends Error {
  readonly issues: { key: string; message: string }[];

  constructor(source: string, issues: { key: string; message: string }[]) {
    const lines = issues.map((i) => `${i.key || '(policy)'}: ${i.message}`);
    super(`policy ${source} is invalid: ${lines.join('; ')}`);
    this.name = 'PolicyError';
    this.issues = issues;
  }
}

/**
 * "/srv//./data/" → "/srv/data": no empty or `.` segment, no trailing `/`, as the kernel and the
 * engines read the path. Only absolute paths without `..` reach here.
 */
export function normalizePath(path: string): string {
  return `/${path
    .split('/')
    .filter((segment) => segment !== '' && segment !== '.')
    .join('/')}`;
}

const size = (what: string) =>
  z.union([z.number(), z.string()]).transform((value, ctx) => {
    const bytes = parseRam(value);
    if (bytes === undefined || !Number.isInteger(bytes) || bytes <= 0) {
      ctx.addIssue({ code: 'custom', message: `must be a positive ${what} such as 1073741824 or "1Gi"` });
      return z.NEVER;
    }
    return bytes;
  });

const hostPrefix = z
  .object({
    hostPath: z
      .string()
      .refine((p) => p.startsWith('/'), 'must be an absolute path (start with /)')
      .refine((p) => !p.split('/').includes('..'), 'must not contain ".." segments')
      .refine((p) => !p.includes('\0'), 'must not contain NUL bytes')
      .transform(normalizePath),
    readWrite: z.boolean().default(false),
  })
  .strict();

const positive = z.number().positive('must be greater than 0');

const runs = z
  .number()
  .int('must be a whole number')
  .min(0, 'must not be negative')
  .max(RETRY_LIMITS.runs, `must be at most ${RETRY_LIMITS.runs}`);

const timeoutSeconds = positive.max(MAX_TIMEOUT_SECONDS, `must be at most ${MAX_TIMEOUT_SECONDS} (30 days)`);
const timeoutBound = z
  .object({ max: timeoutSeconds.optional(), default: timeoutSeconds.optional() })
  .strict();

const policySchema = z
  .object({
    images: z.array(z.string().min(1, 'must not be empty')).default(['**']),
    allowImageIds: z.boolean().default(false),
    mounts: z.array(hostPrefix).default([]),
    imageTarballs: z.array(hostPrefix).default([]),
    networkModes: z.array(z.string().min(1, 'must not be empty')).default([...DEFAULT_NETWORK_MODES]),
    resources: z
      .object({
        maxVcpus: positive.max(SPEC_LIMITS.vcpus).optional(),
        maxRam: size('byte count').optional(),
        maxGpus: z.number().int('must be a whole number').min(0, 'must not be negative').optional(),
        defaultVcpus: positive.max(SPEC_LIMITS.vcpus).optional(),
        defaultRam: size('byte count').optional(),
      })
      .strict()
      .default({}),
    /** The old name of timeouts.runSeconds: `{ max: N, default: N }`. */
    maxRunTimeSeconds: positive
      .max(SPEC_LIMITS.maxRunTimeSeconds, `must be at most ${SPEC_LIMITS.maxRunTimeSeconds} (30 days)`)
      .optional(),
    timeouts: z
      .object({
        queueSeconds: timeoutBound.optional(),
        imageSeconds: timeoutBound.optional(),
        startSeconds: timeoutBound.optional(),
        runSeconds: timeoutBound.optional(),
        noOutputSeconds: timeoutBound.optional(),
      })
      .strict()
      .default({}),
    pidsLimit: z.number().int('must be a whole number').min(1).default(DEFAULT_PIDS_LIMIT),
    maxOutputBytes: size('byte count').default(DEFAULT_MAX_OUTPUT_BYTES),
    retry: z
      .object({
        maxLimit: runs.default(DEFAULT_MAX_RETRY_LIMIT),
        maxInfraLimit: runs.default(DEFAULT_MAX_INFRA_LIMIT),
      })
      .strict()
      .default({ maxLimit: DEFAULT_MAX_RETRY_LIMIT, maxInfraLimit: DEFAULT_MAX_INFRA_LIMIT }),
    gateway: z
      .object({
        exec: z.boolean().default(true),
        forward: z.boolean().default(true),
        execUsers: z
          .array(
            z
              .string()
              .min(1, 'must not be empty')
              .refine((u) => !u.includes('\0'), 'must not contain NUL bytes'),
          )
          .nullable()
          .default(null),
      })
      .strict()
      .default({ exec: true, forward: true, execUsers: null }),
  })
  .strict();

/** The policy as written in a file, before defaults. */
export type PolicyInput = z.input<typeof policySchema>;

/**
 * Validates a policy (the parsed YAML or JSON of STEVEDORE_POLICY; undefined = none: all
 * defaults). Throws PolicyError naming every bad or unknown key; `source` names the file.
 */
export function parsePolicy(input: unknown, source: string): Policy {
  const parsed = policySchema.safeParse(input ?? {});
  if (!parsed.success) {
    throw new PolicyError(
      source,
      parsed.error.issues.map((issue) => {
        const key = issue.path.map(String).join('.');
        if (issue.code === 'unrecognized_keys')
          return { key, message: `unknown key ${issue.keys.join(', ')}` };
        return { key, message: issue.message };
      }),
    );
  }
  const { resources, maxRunTimeSeconds, timeouts: bounds, ...rest } = parsed.data;
  const problems: { key: string; message: string }[] = [];
  if (maxRunTimeSeconds !== undefined && bounds.runSeconds !== undefined)
    problems.push({
      key: 'maxRunTimeSeconds',
      message: 'is the old name of timeouts.runSeconds, and both are given: keep timeouts.runSeconds only',
    });
  const timeouts = policyTimeouts(bounds, maxRunTimeSeconds);
  for (const name of TIMEOUT_NAMES) {
    const { max, default: fallback } = timeouts[name];
    if (max !== undefined && fallback !== undefined && fallback > max)
      problems.push({ key: `timeouts.${name}.default`, message: `is above timeouts.${name}.max (${max})` });
  }
  const defaultRam = resources.defaultRam ?? Math.min(DEFAULT_RAM_BYTES, resources.maxRam ?? Infinity);
  if (resources.maxRam !== undefined && defaultRam > resources.maxRam)
    problems.push({
      key: 'resources.defaultRam',
      message: `is above resources.maxRam (${resources.maxRam})`,
    });
  if (
    resources.maxVcpus !== undefined &&
    resources.defaultVcpus !== undefined &&
    resources.defaultVcpus > resources.maxVcpus
  )
    problems.push({
      key: 'resources.defaultVcpus',
      message: `is above resources.maxVcpus (${resources.maxVcpus})`,
    });
  if (problems.length > 0) throw new PolicyError(source, problems);
  return { ...rest, resources: { ...resources, defaultRam }, timeouts };
}

/**
 * Each timeout's bounds as written. The run timeout always has a cap and a default: the one of
 * them given stands for both (as `maxRunTimeSeconds` always did), else 24 h.
 */
function policyTimeouts(
  bounds: Partial<Record<TimeoutName, TimeoutBound>>,
  maxRunTimeSeconds: number | undefined,
): PolicyTimeouts {
  const run = bounds.runSeconds ?? { max: maxRunTimeSeconds, default: maxRunTimeSeconds };
  const runMax = run.max ?? Math.max(run.default ?? 0, DEFAULT_MAX_RUN_TIME_SECONDS);
  return {
    queueSeconds: { ...bounds.queueSeconds },
    imageSeconds: { ...bounds.imageSeconds },
    startSeconds: { ...bounds.startSeconds },
    noOutputSeconds: { ...bounds.noOutputSeconds },
    runSeconds: { max: runMax, default: run.default ?? runMax },
  };
}
