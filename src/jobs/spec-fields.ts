/**
 * The job spec's field schemas that carry rules of their own (paths, sizes, the environment,
 * stdin); spec.ts puts them together into the whole spec.
 */
import { z } from 'zod';
import { JOB_ENV } from './names.js';
import { SPEC_LIMITS } from './spec-limits.js';

const ADDED_ENV: readonly string[] = Object.values(JOB_ENV);

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
export function hasControlCharacter(text: string, { nul }: { nul: boolean }): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && (nul || c !== 0)) || c === 0x7f) return true;
  }
  return false;
}

/** An absolute path; `subject` names it in messages when the path is a record key. */
export const absolutePath = (subject = '') =>
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

export const ram = z.union([z.number(), z.string()]).transform((value, ctx) => {
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

export const env = z
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
  )
  .superRefine((e, ctx) => {
    for (const name of Object.keys(e)) {
      if (ADDED_ENV.includes(name))
        ctx.addIssue({
          code: 'custom',
          path: [name],
          message: `is set by Stevedore for every run (${ADDED_ENV.join(', ')}); remove it from env, or use another name`,
        });
    }
  });

export const stdin = z.union([
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
