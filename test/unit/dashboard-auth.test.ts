import { describe, expect, it } from 'vitest';
import {
  afterTokenLocation,
  bearerToken,
  checkAccess,
  cookieValue,
  isLoopback,
  requestUrl,
  sameOrigin,
  TOKEN_COOKIE,
  tokenCookie,
  tokenMatches,
} from '../../src/dashboard/auth.js';
import { checkDashboardAccess, DashboardConfigError } from '../../src/dashboard/settings.js';

const TOKEN = 'a-long-enough-dashboard-token';

describe('dashboard token', () => {
  it('matches only the exact token, whatever the length presented', () => {
    expect(tokenMatches(TOKEN, TOKEN)).toBe(true);
    expect(tokenMatches(`${TOKEN}x`, TOKEN)).toBe(false);
    expect(tokenMatches(TOKEN.slice(0, -1), TOKEN)).toBe(false);
    expect(tokenMatches('', TOKEN)).toBe(false);
    expect(tokenMatches(undefined, TOKEN)).toBe(false);
  });

  it('reads the cookie and the Bearer header', () => {
    expect(cookieValue(`a=1; ${TOKEN_COOKIE}=${encodeURIComponent('x y')}; b=2`, TOKEN_COOKIE)).toBe('x y');
    expect(cookieValue('a=1', TOKEN_COOKIE)).toBeUndefined();
    expect(cookieValue(`${TOKEN_COOKIE}=%E0%A4%A`, TOKEN_COOKIE)).toBeUndefined();
    expect(bearerToken(`Bearer ${TOKEN}`)).toBe(TOKEN);
    expect(bearerToken(`Basic ${TOKEN}`)).toBeUndefined();
  });

  it('lets everyone in without a token, and with one only those who carry it', () => {
    expect(checkAccess(undefined, {})).toEqual({ ok: true, via: 'open' });
    expect(checkAccess(TOKEN, {})).toEqual({ ok: false });
    expect(checkAccess(TOKEN, { authorization: 'Bearer wrong-token-wrong-token' })).toEqual({ ok: false });
    expect(checkAccess(TOKEN, { authorization: `Bearer ${TOKEN}` })).toEqual({ ok: true, via: 'bearer' });
    expect(checkAccess(TOKEN, { cookie: `${TOKEN_COOKIE}=${TOKEN}` })).toEqual({ ok: true, via: 'cookie' });
    expect(checkAccess(TOKEN, { queryToken: TOKEN })).toEqual({ ok: true, via: 'query' });
    expect(checkAccess(TOKEN, { queryToken: '' })).toEqual({ ok: false });
  });

  it('its cookie is HttpOnly and SameSite=Strict', () => {
    expect(tokenCookie(TOKEN)).toBe(`${TOKEN_COOKIE}=${TOKEN}; Path=/; HttpOnly; SameSite=Strict`);
  });
});

describe('dashboard address', () => {
  it('knows loopback addresses', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1']) {
      expect(isLoopback(host), host).toBe(true);
    }
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.2', 'example.com', '128.0.0.1', '']) {
      expect(isLoopback(host), host).toBe(false);
    }
  });

  it('refuses an address other than loopback without a token, and a short token anywhere', () => {
    expect(checkDashboardAccess({ host: '127.0.0.1', port: 9465 }, undefined)).toBeUndefined();
    expect(checkDashboardAccess({ host: '127.0.0.1', port: 9465 }, '')).toBeUndefined();
    expect(checkDashboardAccess({ host: '0.0.0.0', port: 9465 }, TOKEN)).toBe(TOKEN);
    expect(() => checkDashboardAccess({ host: '0.0.0.0', port: 9465 }, undefined)).toThrow(
      /^dashboard: refusing to listen on 0\.0\.0\.0:9465 without a token: .*STEVEDORE_DASHBOARD_TOKEN/,
    );
    expect(() => checkDashboardAccess({ host: '::', port: 1 }, '')).toThrow(/\[::\]:1/);
    expect(() => checkDashboardAccess({ host: '127.0.0.1', port: 9465 }, 'short')).toThrow(
      DashboardConfigError,
    );
    expect(() => checkDashboardAccess({ host: '127.0.0.1', port: 9465 }, 'short')).toThrow(
      /^STEVEDORE_DASHBOARD_TOKEN is too short \(5 characters\)/,
    );
  });
});

describe('dashboard CSRF guard', () => {
  it('takes a POST from its own pages only', () => {
    const host = '127.0.0.1:9465';
    expect(sameOrigin({ host, origin: 'http://127.0.0.1:9465', 'sec-fetch-site': 'same-origin' })).toBe(true);
    expect(sameOrigin({ host, origin: 'http://127.0.0.1:9465' })).toBe(true);
    expect(sameOrigin({ host, origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' })).toBe(false);
    expect(sameOrigin({ host, origin: 'http://127.0.0.1:9465', 'sec-fetch-site': 'same-site' })).toBe(false);
    expect(sameOrigin({ host, origin: 'http://127.0.0.1:1234' })).toBe(false);
    expect(sameOrigin({ host, origin: 'null' })).toBe(false);
    expect(sameOrigin({ host })).toBe(false);
  });
});

describe('the redirect after a ?token= visit', () => {
  const redirectFor = (target: string) => afterTokenLocation(requestUrl(target));

  it('keeps the path and the query without the token', () => {
    expect(redirectFor(`/jobs?state=failed&token=${TOKEN}`)).toBe('/jobs?state=failed');
    expect(redirectFor(`/?token=${TOKEN}`)).toBe('/');
    expect(redirectFor(`/job?token=${TOKEN}&id=a%20b`)).toBe('/job?id=a+b');
  });

  it('never names another site, however the path is spelt', () => {
    for (const target of [
      `/.//evil.example/?token=${TOKEN}`,
      `//evil.example/?token=${TOKEN}`,
      `///evil.example/?token=${TOKEN}`,
      `/./\\evil.example/?token=${TOKEN}`,
      `/\\evil.example/?token=${TOKEN}`,
      `/%2F/evil.example/?token=${TOKEN}`,
    ]) {
      const location = redirectFor(target);
      expect(location, target).toMatch(/^\/[^/\\]/);
      // Resolved as a browser does against the dashboard's own address, it stays there.
      expect(new URL(location, 'http://127.0.0.1:8080/x').host, target).toBe('127.0.0.1:8080');
    }
    expect(redirectFor(`/.//evil.example/?token=${TOKEN}`)).toBe('/evil.example/');
  });

  it('reads a target that starts with // as a path here, not as another host', () => {
    expect(requestUrl('//evil.example/jobs?x=1').pathname).toBe('//evil.example/jobs');
    expect(requestUrl('//evil.example/jobs?x=1').host).toBe('dashboard.invalid');
  });
});
