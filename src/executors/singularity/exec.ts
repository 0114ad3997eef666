import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { ExecOptions, ExecResult } from '../executor.js';
import { confinedExecStream, type ExecTarget } from './exec-stream.js';

function collect(stream: Readable | null): Promise<string> {
  if (!stream) return Promise.resolve('');
  const chunks: Buffer[] = [];
  return new Promise((resolve) => {
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('error', () => resolve(Buffer.concat(chunks).toString('utf8')));
    stream.once('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

/**
 * Runs a command inside the running container with the job's own confinement (exec-chain.ts),
 * its output collected. An abort kills it.
 */
export async function confinedExec(
  target: ExecTarget,
  command: string[],
  options: ExecOptions = {},
): Promise<ExecResult> {
  options.signal?.throwIfAborted();
  const exec = await confinedExecStream(target, { command, user: options.user, stdin: true });
  const stdout = collect(exec.stdout);
  const stderr = collect(exec.stderr);
  exec.stdin?.on('error', () => undefined);
  exec.stdin?.end(options.stdin ?? '');
  const abort = () => exec.kill();
  options.signal?.addEventListener('abort', abort, { once: true });
  try {
    const exitCode = await exec.exitCode;
    return { exitCode, stdout: await stdout, stderr: await stderr };
  } finally {
    options.signal?.removeEventListener('abort', abort);
  }
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
