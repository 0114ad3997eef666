import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { externalAddress } from '../../src/config/gateway.js';
import { loadConfig } from '../../src/config/worker.js';

describe('gateway settings', () => {
  it('is off by default', () => {
    expect(loadConfig({}).gateway).toBeUndefined();
  });

  it('listens where told and advertises that address, or the host name for a wildcard', () => {
    expect(loadConfig({ STEVEDORE_GATEWAY: '10.0.0.7:9470' }).gateway).toEqual({
      listen: { host: '10.0.0.7', port: 9470 },
      advertise: { host: '10.0.0.7', port: 9470 },
    });
    expect(loadConfig({ STEVEDORE_GATEWAY: '9470' }).gateway?.listen).toEqual({
      host: '127.0.0.1',
      port: 9470,
    });
    // A wildcard is no address to dial: the host's external address (a compose replica's), else its name.
    expect(loadConfig({ STEVEDORE_GATEWAY: '0.0.0.0:9470' }).gateway?.advertise).toEqual({
      host: externalAddress() ?? hostname(),
      port: 9470,
    });
  });

  it('takes an advertised host, with or without a port', () => {
    const at = (advertise: string) =>
      loadConfig({ STEVEDORE_GATEWAY: '0.0.0.0:9470', STEVEDORE_GATEWAY_ADVERTISE: advertise }).gateway
        ?.advertise;
    expect(at('worker-3.example.com')).toEqual({ host: 'worker-3.example.com', port: 9470 });
    expect(at('203.0.113.9:19470')).toEqual({ host: '203.0.113.9', port: 19470 });
    expect(at('[2001:db8::1]:19470')).toEqual({ host: '2001:db8::1', port: 19470 });
    expect(() => at('0.0.0.0:1')).toThrow('STEVEDORE_GATEWAY_ADVERTISE="0.0.0.0:1" is invalid');
    expect(() => at('host:99999')).toThrow('STEVEDORE_GATEWAY_ADVERTISE');
  });

  it('serves TLS with both files, and refuses one without the other', () => {
    expect(
      loadConfig({
        STEVEDORE_GATEWAY: ':9470',
        STEVEDORE_GATEWAY_TLS_CERT: '/etc/gw/cert.pem',
        STEVEDORE_GATEWAY_TLS_KEY: '/etc/gw/key.pem',
      }).gateway?.tls,
    ).toEqual({ cert: '/etc/gw/cert.pem', key: '/etc/gw/key.pem' });
    expect(() =>
      loadConfig({ STEVEDORE_GATEWAY: ':9470', STEVEDORE_GATEWAY_TLS_CERT: '/etc/gw/cert.pem' }),
    ).toThrow('STEVEDORE_GATEWAY_TLS_CERT is set without STEVEDORE_GATEWAY_TLS_KEY');
  });

  it('refuses a companion setting without the gateway', () => {
    expect(() => loadConfig({ STEVEDORE_GATEWAY_ADVERTISE: 'w3' })).toThrow(
      'STEVEDORE_GATEWAY_ADVERTISE is set but STEVEDORE_GATEWAY is not',
    );
    expect(() => loadConfig({ STEVEDORE_GATEWAY: 'nope' })).toThrow('STEVEDORE_GATEWAY="nope" is invalid');
  });
});
