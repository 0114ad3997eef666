import type { AllowedPath } from './policy.js';

/**
 * Host path rules shared by `mounts` and `imageTarballs`. Pure: the worker resolves every path
 * on its host first (realpath) and hands the answers in as facts.
 */

/** What the worker found at a host path a job names. */
export type PathFact =
  | { kind: 'real'; path: string }
  | { kind: 'missing' }
  | { kind: 'unreadable'; code: string };

/** A host path no job may bind or load from, even under an allowed prefix, and why. */
export interface NeverAllowed {
  /** Resolved on the host. */
  path: string;
  what: string;
}

/** On path-segment boundaries: `/srv/data` holds `/srv/data/x`, not `/srv/data-other`. */
export function isUnder(path: string, prefix: string): boolean {
  if (prefix === '/') return path.startsWith('/');
  return path === prefix || path.startsWith(`${prefix}/`);
}

/** The longest allowed prefix that holds `path`, or undefined. */
export function longestMatch(path: string, allowed: readonly AllowedPath[]): AllowedPath | undefined {
  let best: AllowedPath | undefined;
  for (const prefix of allowed) {
    if (isUnder(path, prefix.hostPath) && (!best || prefix.hostPath.length > best.hostPath.length))
      best = prefix;
  }
  return best;
}

/**
 * The never-allowed path a resolved host path would expose: the path itself, anything inside
 * it, or a directory holding it (binding /var/run exposes /var/run/docker.sock). `/` counts
 * only as itself, or everything would be denied.
 */
export function exposes(path: string, never: readonly NeverAllowed[]): NeverAllowed | undefined {
  return never.find((n) => (n.path === '/' ? path === '/' : isUnder(path, n.path) || isUnder(n.path, path)));
}

/**
 * Why `written` (resolved as `fact`) may not be used with `allowed`, or null when it may;
 * `readWrite` asks for write access. `label` names the kind of prefix in messages.
 */
export function hostPathProblem(
  written: string,
  fact: PathFact,
  readWrite: boolean,
  allowed: readonly AllowedPath[],
  never: readonly NeverAllowed[],
  label: string,
): string | null {
  if (fact.kind === 'missing') return `${written} does not exist on the worker host`;
  if (fact.kind === 'unreadable') return `${written} cannot be resolved on the worker host (${fact.code})`;
  const real = fact.path;
  const shown = real === written ? written : `${written} (resolves to ${real})`;
  const forbidden = exposes(real, never);
  if (forbidden) {
    const relation = real === forbidden.path ? 'is' : isUnder(real, forbidden.path) ? 'is inside' : 'holds';
    return `${shown} is never allowed: it ${relation} ${forbidden.what} ${forbidden.path}`;
  }
  const match = longestMatch(real, allowed);
  if (!match) return `${shown} is not under an allowed ${label}`;
  if (readWrite && !match.readWrite)
    return `${shown} is read-write, but its allowed ${label} ${match.hostPath} is read-only`;
  return null;
}
