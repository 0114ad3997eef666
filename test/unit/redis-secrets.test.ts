import { describe, expect, it } from 'vitest';
import { loadClientConfig } from '../../src/config/client.js';
import { ConfigError } from '../../src/config/errors.js';
import { loadConfig } from '../../src/config/worker.js';
import { withoutSecrets } from '../../src/jobs/connection.js';
import { redactRedisUrl } from '../../src/jobs/redis-url.js';

describe('redactRedisUrl', () => {
  it.each([
    ['redis://user:s3cret@host:6379/0', 'redis://user:***@host:6379/0'],
    ['rediss://:s3cret@127.0.0.1:1234', 'rediss://:***@127.0.0.1:1234'],
    ['redis://u:p@ss/w@host:1', 'redis://u:***@host:1'], // unencoded @ and / in the password
    ['redis://:p%40w@h:1/', 'redis://:***@h:1/'],
    ['http//u:s3cret@host', 'http//u:***@host'], // a mistyped scheme still hides it
  ])('hides the password of %s', (url, redacted) => {
    expect(redactRedisUrl(url)).toBe(redacted);
  });

  it.each(['redis://host:6379', 'redis://user@host:1', 'rediss://127.0.0.1:6380/2'])(
    'leaves %s, which has no password, as it is',
    (url) => {
      expect(redactRedisUrl(url)).toBe(url);
    },
  );
});

describe('withoutSecrets', () => {
  it("hides the arguments ioredis hangs on a failed AUTH's error, keeps the rest", () => {
    const error = Object.assign(new Error('WRONGPASS invalid username-password pair'), {
      command: { name: 'auth', args: ['worker', 's3cret'] },
    });
    expect(JSON.stringify(withoutSecrets(error))).not.toContain('s3cret');
    expect(withoutSecrets(error).message).toBe('WRONGPASS invalid username-password pair');
    const other = Object.assign(new Error('NOPERM'), { command: { name: 'get', args: ['bull:x'] } });
    expect(withoutSecrets(other).command.args).toEqual(['bull:x']);
  });
});

describe('Redis settings', () => {
  it('a bad REDIS_URL is named without its password', () => {
    expect(() => loadConfig({ REDIS_URL: 'http://u:s3cret@host:1' })).toThrow(
      'REDIS_URL="http://u:***@host:1" is invalid: expected redis://[user:password@]host:port[/db] or rediss://… for TLS',
    );
    expect(() => loadClientConfig({ REDIS_URL: 'u:s3cret@host' })).toThrow(/REDIS_URL="u:\*\*\*@host"/);
  });

  it('takes the TLS files with a rediss:// URL', () => {
    const config = loadConfig({
      REDIS_URL: 'rediss://127.0.0.1:6380',
      STEVEDORE_REDIS_TLS_CA: '/etc/ca.pem',
      STEVEDORE_REDIS_TLS_CERT: '/etc/c.pem',
      STEVEDORE_REDIS_TLS_KEY: '/etc/k.pem',
    });
    expect(config.redisTls).toEqual({ ca: '/etc/ca.pem', cert: '/etc/c.pem', key: '/etc/k.pem' });
    expect(loadConfig({ REDIS_URL: 'rediss://h:1' }).redisTls).toBeUndefined();
    expect(
      loadClientConfig({}, { REDIS_URL: 'rediss://h:1', STEVEDORE_REDIS_TLS_CA: '/ca' }).redisTls,
    ).toEqual({ ca: '/ca' });
  });

  it('refuses TLS files that could not be used: plain redis://, no URL, a certificate without its key', () => {
    expect(() => loadConfig({ REDIS_URL: 'redis://h:1', STEVEDORE_REDIS_TLS_CA: '/ca' })).toThrow(
      'STEVEDORE_REDIS_TLS_CA is set, but REDIS_URL is not a rediss:// URL: use REDIS_URL=rediss://host:port, or unset STEVEDORE_REDIS_TLS_CA',
    );
    expect(() => loadConfig({ STEVEDORE_REDIS_TLS_CA: '/ca' })).toThrow(
      /REDIS_URL is unset \(the embedded Redis has no TLS\)/,
    );
    expect(() => loadConfig({ REDIS_URL: 'rediss://h:1', STEVEDORE_REDIS_TLS_CERT: '/c' })).toThrow(
      'STEVEDORE_REDIS_TLS_CERT is set without STEVEDORE_REDIS_TLS_KEY: a client certificate needs its key',
    );
    expect(() => loadConfig({ REDIS_URL: 'redis://h:1', STEVEDORE_REDIS_TLS_KEY: '/k' })).toThrow(
      ConfigError,
    );
  });
});
