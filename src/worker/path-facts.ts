import { realpath, stat } from 'node:fs/promises';
import type { PathFact } from '../policy/host-paths.js';

/**
 * Which file a path names, as the kernel tells files apart: the same (dev, ino) is the same file
 * or directory, whatever path reached it. Bigints, since an inode number may pass 2^53.
 */
export interface FileIdentity {
  dev: bigint;
  ino: bigint;
}

/** What is at a host path, with the identity of what its real path named when it was resolved. */
export interface ResolvedPath {
  fact: PathFact;
  /** Null unless `fact` is real. */
  identity: FileIdentity | null;
}

/** The identity of what `path` names now, following links. */
export async function identityOf(path: string): Promise<FileIdentity> {
  const s = await stat(path, { bigint: true });
  return { dev: s.dev, ino: s.ino };
}

export function sameFile(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

function missingOr(error: unknown): ResolvedPath {
  const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
  return {
    fact: code === 'ENOENT' || code === 'ENOTDIR' ? { kind: 'missing' } : { kind: 'unreadable', code },
    identity: null,
  };
}

/**
 * What is at a host path on this worker: its real path with every symlink resolved, and the
 * identity of the file there. The real path is resolved again after the stat: a link swapped in
 * between (so that the stat saw another file than the real path names) is reported as unreadable,
 * never pinned under the wrong identity.
 */
export async function resolveHostPath(path: string): Promise<ResolvedPath> {
  try {
    const real = await realpath(path);
    const identity = await identityOf(real);
    if ((await realpath(real)) !== real)
      return { fact: { kind: 'unreadable', code: 'it changed while it was resolved' }, identity: null };
    return { fact: { kind: 'real', path: real }, identity };
  } catch (error) {
    return missingOr(error);
  }
}

/** What is at a host path on this worker. The policy check itself never touches the file system. */
export async function pathFact(path: string): Promise<PathFact> {
  return (await resolveHostPath(path)).fact;
}

/** The resolutions of every path, keyed by the path as written. */
export async function resolveHostPaths(paths: readonly string[]): Promise<Map<string, ResolvedPath>> {
  return new Map(await Promise.all(paths.map(async (p) => [p, await resolveHostPath(p)] as const)));
}

/** The facts for every path, keyed by the path as written. */
export async function pathFacts(paths: readonly string[]): Promise<Map<string, PathFact>> {
  const resolved = await resolveHostPaths(paths);
  return new Map([...resolved].map(([p, r]) => [p, r.fact]));
}

/** A path resolved when it exists, else as written (a prefix or socket that is not there yet). */
export async function resolvedOrWritten(path: string): Promise<string> {
  const fact = await pathFact(path);
  return fact.kind === 'real' ? fact.path : path;
}
