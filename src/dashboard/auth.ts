import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';

/** The cookie a `?token=` visit sets, so the browser's later requests (and its EventSource) carry it. */
export const TOKEN_COOKIE = 'stevedore_dashboard';

/** Whether `host` only ever reaches this machine: 127.0.0.0/8, ::1 or "localhost". */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  return mapped ? (mapped[1] as string).startsWith('127.') : false;
}

/**
 * Constant-time comparison of a presented token with the configured one. Both are hashed first,
 * so the comparison has one length whatever was presented (timingSafeEqual needs equal lengths).
 */
export function tokenMatches(presented: string | undefined, expected: string): boolean {
  if (presented === undefined) return false;
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** One cookie's value from a Cookie header. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** The token of `Authorization: Bearer …`, if any. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m?.[1];
}

export type Access =
  | { ok: true; via: 'open' | 'cookie' | 'bearer' }
  /** `?token=` was right: set the cookie, then send the browser to the same URL without it. */
  | { ok: true; via: 'query' }
  | { ok: false };

/** Who may in: everyone without a configured token; else a request with it as cookie, Bearer or `?token=`. */
export function checkAccess(
  token: string | undefined,
  request: { cookie?: string; authorization?: string; queryToken?: string | null },
): Access {
  if (token === undefined) return { ok: true, via: 'open' };
  if (tokenMatches(bearerToken(request.authorization), token)) return { ok: true, via: 'bearer' };
  if (tokenMatches(cookieValue(request.cookie, TOKEN_COOKIE), token)) return { ok: true, via: 'cookie' };
  if (request.queryToken != null && tokenMatches(request.queryToken, token))
    return { ok: true, via: 'query' };
  return { ok: false };
}

/**
 * Where a right `?token=` visit is sent next: the same path and query, without the token, as a
 * path on this dashboard. Leading slashes are folded into one, since a Location of
 * `//evil.example/` (from `/.//evil.example/`, which URL parsing turns into that path) is
 * another site to the browser, and browsers read `\` as `/` there too.
 */
export function afterTokenLocation(url: URL): string {
  const search = new URLSearchParams(url.search);
  search.delete('token');
  const query = search.toString();
  const path = `/${url.pathname.replace(/^[/\\]+/, '')}`;
  return query ? `${path}?${query}` : path;
}

/**
 * A request's target as a URL on this dashboard. `new URL(target, base)` would read a target
 * that starts with `//` as another host (`//evil.example/jobs` has the path `/jobs` there).
 */
export function requestUrl(target: string | undefined): URL {
  const t = target ?? '/';
  return new URL(`http://dashboard.invalid${t.startsWith('/') ? t : `/${t}`}`);
}

/** The Set-Cookie header of a right `?token=` visit: not readable by scripts, never sent cross-site. */
export function tokenCookie(token: string): string {
  return `${TOKEN_COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict`;
}

/**
 * The CSRF guard of a state-changing POST from a browser: it must come from a page of this
 * dashboard. Chromium and Firefox send `Sec-Fetch-Site`; every current browser sends `Origin` on
 * a POST, which must name the host the request went to.
 */
export function sameOrigin(headers: { origin?: string; host?: string; 'sec-fetch-site'?: string }): boolean {
  const site = headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return false;
  if (!headers.origin || !headers.host) return false;
  try {
    return new URL(headers.origin).host === headers.host.toLowerCase();
  } catch {
    return false;
  }
}
