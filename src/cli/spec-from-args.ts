import type { JobSpecInput } from '../jobs/spec.js';
import { UsageError } from './usage.js';

/** The `stevedore submit` flags that shape the spec. */
export interface SubmitFlags {
  image?: string;
  'image-tarball'?: string;
  pull?: string;
  env?: string[];
  workdir?: string;
  mount?: string[];
  vcpus?: string;
  ram?: string;
  network?: boolean;
  'no-init'?: boolean;
  'max-run-time'?: string;
  'stop-grace'?: string;
  label?: string[];
}

function pairs(flag: string, values: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of values ?? []) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`--${flag} ${JSON.stringify(item)}: expected NAME=VALUE`);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

function number(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n))
    throw new UsageError(`--${flag} ${JSON.stringify(value)}: expected a number`);
  return n;
}

function mounts(values: string[] | undefined): JobSpecInput['mounts'] {
  const out: NonNullable<JobSpecInput['mounts']> = {};
  for (const item of values ?? []) {
    const match = /^([^=]+)=(.+?)(:rw|:ro)?$/.exec(item);
    if (!match?.[1] || !match[2]) {
      throw new UsageError(`--mount ${JSON.stringify(item)}: expected CONTAINER_PATH=HOST_PATH[:rw]`);
    }
    out[match[1]] = { hostPath: match[2], readOnly: match[3] !== ':rw' };
  }
  return out;
}

/**
 * Merges a spec file's content with command-line flags (flags win; env, mounts and labels are
 * merged key by key). Does not validate the result: parseJobSpec does, naming every field.
 */
export function specFromArgs(
  flags: SubmitFlags,
  command: string[],
  file: Record<string, unknown> = {},
): JobSpecInput {
  const spec: Record<string, unknown> = { ...file };
  const set = (key: string, value: unknown): void => {
    if (value !== undefined) spec[key] = value;
  };
  const merge = (key: string, value: Record<string, unknown> | undefined): void => {
    if (value && Object.keys(value).length > 0) spec[key] = { ...((file[key] as object) ?? {}), ...value };
  };
  set('image', flags.image);
  set('imageTarball', flags['image-tarball']);
  set('imagePullPolicy', flags.pull); // checked with the rest of the spec
  if (command.length > 0) spec.command = command;
  merge('env', pairs('env', flags.env));
  set('workingDir', flags.workdir);
  merge('mounts', mounts(flags.mount));
  const resources: Record<string, unknown> = {};
  if (flags.vcpus !== undefined) resources.vcpus = number('vcpus', flags.vcpus);
  if (flags.ram !== undefined) resources.ram = /^\d+$/.test(flags.ram) ? Number(flags.ram) : flags.ram;
  merge('resources', resources);
  if (flags.network) spec.network = { ...((file.network as object) ?? {}), enabled: true };
  if (flags['no-init']) spec.init = false;
  set('maxRunTimeSeconds', number('max-run-time', flags['max-run-time']));
  set('stopGraceSeconds', number('stop-grace', flags['stop-grace']));
  merge('labels', pairs('label', flags.label));
  return spec as unknown as JobSpecInput;
}
