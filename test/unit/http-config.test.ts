import { describe, expect, it } from 'vitest';
import { parseHttpAddress } from '../../src/config/http-address.js';
import { loadConfig } from '../../src/config/worker.js';

describe('STEVEDORE_HTTP', () => {
  it('is off unless set', () => {
    expect(loadConfig({}).http).toBeUndefined();
    expect(loadConfig({ STEVEDORE_HTTP: '127.0.0.1:9464' }).http).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(loadConfig({}, { STEVEDORE_HTTP: ':9000' }).http).toEqual({ host: '127.0.0.1', port: 9000 });
  });

  it('binds loopback when no host is given, and any host named explicitly', () => {
    expect(parseHttpAddress('9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseHttpAddress(':9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseHttpAddress('0.0.0.0:9464')).toEqual({ host: '0.0.0.0', port: 9464 });
    expect(parseHttpAddress('[::1]:9464')).toEqual({ host: '::1', port: 9464 });
    expect(parseHttpAddress('worker.local:80')).toEqual({ host: 'worker.local', port: 80 });
  });

  it.each(['', 'host', 'host:', 'host:0', 'host:65536', '::1:80', 'a:b'])(
    'refuses %j naming the variable',
    (v) => {
      expect(() => loadConfig({ STEVEDORE_HTTP: v || ' ' })).toThrow(
        /^STEVEDORE_HTTP=".*" is invalid: expected host:port/,
      );
      expect(() => parseHttpAddress(v, '--http')).toThrow(/^--http=/);
    },
  );
});
