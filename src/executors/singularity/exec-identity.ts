import { lstat, readFile } from 'node:fs/promises';
import { coerceError, PhaseError } from '../../jobs/errors.js';
import { capabilityNames } from './capabilities.js';

/** Who a job's process is, as an exec into its container must be too (read from the host's /proc). */
export interface JobIdentity {
  uid: number;
  gid: number;
  /** Capability names of its inheritable, bounding and ambient sets. */
  inheritable: string[];
  bounding: string[];
  ambient: string[];
  /** Its environment, without what a shell keeps about itself (PWD, OLDPWD, SHLVL, _). */
  env: Record<string, string>;
}

/** A variable name an exec can set (the gateway's and the spec's rule, and what a shell can export). */
export const EXEC_ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** What a shell keeps about itself: not configuration, so an exec does not inherit it from the job's process. */
const SHELL_STATE = new Set(['PWD', 'OLDPWD', 'SHLVL', '_']);

function statusField(status: string, name: string): string {
  const line = status.split('\n').find((l) => l.startsWith(`${name}:`));
  if (line === undefined) throw new Error(`no ${name} line`);
  return line.slice(name.length + 1).trim();
}

/** The identity of process `pid` (a process of the job's image, seen from the host). */
export async function jobIdentity(pid: number): Promise<JobIdentity> {
  let status: string;
  let environ: string;
  try {
    [status, environ] = await Promise.all([
      readFile(`/proc/${pid}/status`, 'utf8'),
      readFile(`/proc/${pid}/environ`, 'utf8'),
    ]);
    const [, euid] = statusField(status, 'Uid').split(/\s+/);
    const [, egid] = statusField(status, 'Gid').split(/\s+/);
    const env: Record<string, string> = {};
    for (const entry of environ.split('\0')) {
      const at = entry.indexOf('=');
      const name = entry.slice(0, at);
      if (at > 0 && EXEC_ENV_NAME.test(name) && !SHELL_STATE.has(name)) env[name] = entry.slice(at + 1);
    }
    return {
      uid: Number(euid),
      gid: Number(egid),
      inheritable: capabilityNames(statusField(status, 'CapInh')),
      bounding: capabilityNames(statusField(status, 'CapBnd')),
      ambient: capabilityNames(statusField(status, 'CapAmb')),
      env,
    };
  } catch (error) {
    throw new PhaseError(
      'exec',
      `cannot read what the job's process ${pid} runs as (/proc/${pid}/status, environ): ${coerceError(error).message}; the job may have just ended`,
      { cause: error },
    );
  }
}

/**
 * uid and gid of `user` (a name from the container's /etc/passwd, or uid[:gid]). The file is the
 * job's: a symlink there is refused, since /proc/<pid>/root would resolve it on the host.
 */
export async function idsOf(pid: number, user: string): Promise<{ uid: number; gid: number }> {
  const numeric = /^(\d+)(?::(\d+))?$/.exec(user);
  if (numeric) return { uid: Number(numeric[1]), gid: Number(numeric[2] ?? numeric[1]) };
  const root = `/proc/${pid}/root`;
  const etc = await lstat(`${root}/etc`).catch(() => null);
  const file = await lstat(`${root}/etc/passwd`).catch(() => null);
  const passwd =
    etc?.isDirectory() && file?.isFile() ? await readFile(`${root}/etc/passwd`, 'utf8').catch(() => '') : '';
  const entry = passwd.split('\n').find((l) => l.split(':')[0] === user);
  const [, , uid, gid] = entry?.split(':') ?? [];
  if (!uid || !gid || !/^\d+$/.test(uid) || !/^\d+$/.test(gid))
    throw new PhaseError(
      'exec',
      `no user ${JSON.stringify(user)} in the container's /etc/passwd; give a uid[:gid] instead`,
    );
  return { uid: Number(uid), gid: Number(gid) };
}
