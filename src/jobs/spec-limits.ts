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
