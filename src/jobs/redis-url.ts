/**
 * `scheme://`, the user, `:password`, then the last `@` (a password may hold `@` or `/`
 * unencoded); the second form is for text with no scheme, e.g. a mistyped REDIS_URL.
 */
const WITH_SCHEME = /^([a-z][a-z0-9+.-]*:\/\/)([^:@/]*):(.*)@/i;
const WITHOUT_SCHEME = /^()([^:@]*):(.*)@/;

/**
 * A Redis URL fit for logs, errors and terminals: its password (and nothing else) replaced by
 * `***`, so `redis://user:secret@host:6379/0` reads `redis://user:***@host:6379/0`. Works on text
 * that is not a valid URL too, since a mistyped REDIS_URL may still hold a real password.
 */
export function redactRedisUrl(url: string): string {
  const pattern = url.includes('://') ? WITH_SCHEME : WITHOUT_SCHEME;
  return url.replace(pattern, (_match, scheme: string, user: string) => `${scheme}${user}:***@`);
}
