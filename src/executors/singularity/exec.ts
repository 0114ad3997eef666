import { readFile } from 'node:fs/promises';
import { execa } from 'execa';
import { PhaseError } from '../../jobs/errors.js';
import type { ExecOptions, ExecResult } from '../executor.js';
import { RUNTIME_PATH } from './args.js';

/** uid and gid of `user` (a name from the container's /etc/passwd, or uid[:gid]). */
async function idsOf(pid: number, user: string): Promise<{ uid: string; gid: string }> {
  const numeric = /^(\d+)(?::(\d+))?$/.exec(user);
  if (numeric) return { uid: numeric[1] as string, gid: numeric[2] ?? (numeric[1] as string) };
  const passwd = await readFile(`/proc/${pid}/root/etc/passwd`, 'utf8').catch(() => '');
  const entry = passwd.split('\n').find((l) => l.split(':')[0] === user);
  const [, , uid, gid] = entry?.split(':') ?? [];
  if (!uid || !gid)
    throw new PhaseError('exec', `no user ${JSON.stringify(user)} in the container's /etc/passwd`);
  return { uid, gid };
}

/** nsenter's options to enter the container of `pid`: its namespaces, root and working directory (or `workdir` in it). */
export async function nsenterArgs(pid: number, user?: string, workdir?: string): Promise<string[]> {
  const ids = user ? await idsOf(pid, user) : null;
  const args = ['-t', String(pid), '-m', '-u', '-i', '-n', '-p', '-r', workdir ? `--wdns=${workdir}` : '-w'];
  if (ids) args.push('-S', ids.uid, '-G', ids.gid);
  return args;
}

/**
 * Runs a command inside the running container, as crunch-run does: `nsenter` into the namespaces,
 * root and working directory of one of its processes, with the container's PATH only.
 */
export async function nsenterExec(
  pid: number,
  command: string[],
  options: ExecOptions = {},
): Promise<ExecResult> {
  const args = await nsenterArgs(pid, options.user);
  const answer = await execa('nsenter', [...args, '--', ...command], {
    env: { PATH: RUNTIME_PATH },
    extendEnv: false,
    reject: false,
    input: options.stdin ?? '',
    cancelSignal: options.signal,
    stripFinalNewline: false,
  });
  if (answer.exitCode === undefined) {
    throw new PhaseError('exec', `nsenter into pid ${pid} failed: ${answer.shortMessage}`);
  }
  return { exitCode: answer.exitCode, stdout: String(answer.stdout), stderr: String(answer.stderr) };
}

/** The container's first non-loopback IPv4 address, from its network namespace's routing table. */
export async function addressOf(pid: number): Promise<string | null> {
  const trie = await readFile(`/proc/${pid}/net/fib_trie`, 'utf8').catch(() => '');
  const lines = trie.split('\n');
  for (let i = 1; i < lines.length; i++) {
    if (!/\/32 host LOCAL/.test(lines[i] as string)) continue;
    const address = /\|--\s+(\d+\.\d+\.\d+\.\d+)/.exec(lines[i - 1] as string)?.[1];
    if (address && !address.startsWith('127.')) return address;
  }
  return null;
}
