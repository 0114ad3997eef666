/**
 * Glob patterns of the policy: `*` matches within one `/`-separated segment and never past an
 * `@` (so a tag glob such as `busybox:*` cannot take in a digest), `**` matches anything;
 * every other character is itself.
 */
export function globToRegExp(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*' && pattern[i + 1] === '*') {
      source += '.*';
      i += 1;
    } else if (c === '*') source += '[^/@]*';
    else source += c.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

/** Whether any of `patterns` matches any of `candidates`. */
export function matchesAny(patterns: readonly string[], candidates: readonly string[]): boolean {
  const compiled = patterns.map(globToRegExp);
  return compiled.some((re) => candidates.some((c) => re.test(c)));
}
