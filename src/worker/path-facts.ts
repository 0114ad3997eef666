import { realpath } from 'node:fs/promises';
import type { PathFact } from '../policy/host-paths.js';

/**
 * What is at a host path on this worker: its real path with every symlink resolved, or that
 * there is nothing there. The policy check itself never touches the file system.
 */
export async function pathFact(path: string): Promise<PathFact> {
  try {
    return { kind: 'real', path: await realpath(path) };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
    return code === 'ENOENT' || code === 'ENOTDIR' ? { kind: 'missing' } : { kind: 'unreadable', code };
  }
}

/** The facts for every path, keyed by the path as written. */
export async function pathFacts(paths: readonly string[]): Promise<Map<string, PathFact>> {
  const facts = await Promise.all(paths.map(async (p) => [p, await pathFact(p)] as const));
  return new Map(facts);
}

/** A path resolved when it exists, else as written (a prefix or socket that is not there yet). */
export async function resolvedOrWritten(path: string): Promise<string> {
  const fact = await pathFact(path);
  return fact.kind === 'real' ? fact.path : path;
}
