import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { loadClientConfig } from '../../src/config/client.js';
import { externalAddress } from '../../src/config/gateway.js';
import { loadConfig } from '../../src/config/worker.js';
import { resolveKeepalive } from '../../src/jobs/gateway/keepalive.js';

describe('gateway settings', () => {
  it('is off by default', () => {
    expect(loadConfig({}).gateway).toBeUndefined();
  });

  it('listens where told and advertises that address, or the host name for a wildcard', () => {
    expect(loadConfig({ STEVEDORE_GATEWAY: '10.0.0.7:9470' }).gateway).toEqual({
      listen: { host: '10.0.0.7', port: 9470 },
      advertise: { host: '10.0.0.7', port: 9470 },
      keepalive: { pingMs: 10_000, peerTimeoutMs: 35_000 },
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

  it('pings every 10 s and gives a silent peer 35 s, or as told, on the worker and in client commands', () => {
    const worker = (env: Record<string, string>) =>
      loadConfig({ STEVEDORE_GATEWAY: ':9470', ...env }).gateway?.keepalive;
    const client = (env: Record<string, string>) => loadClientConfig(env).gatewayKeepalive;
    for (const read of [worker, client]) {
      expect(read({})).toEqual({ pingMs: 10_000, peerTimeoutMs: 35_000 });
      // The timeout follows the ping unless it is given.
      expect(read({ STEVEDORE_GATEWAY_PING_MS: '1000' })).toEqual({ pingMs: 1_000, peerTimeoutMs: 8_000 });
      expect(read({ STEVEDORE_GATEWAY_PING_MS: '500', STEVEDORE_GATEWAY_PEER_TIMEOUT_MS: '2000' })).toEqual({
        pingMs: 500,
        peerTimeoutMs: 2_000,
      });
      expect(() => read({ STEVEDORE_GATEWAY_PING_MS: '50' })).toThrow(
        'STEVEDORE_GATEWAY_PING_MS="50" is invalid: expected a whole number >= 100',
      );
      expect(() =>
        read({ STEVEDORE_GATEWAY_PING_MS: '1000', STEVEDORE_GATEWAY_PEER_TIMEOUT_MS: '1500' }),
      ).toThrow(
        'STEVEDORE_GATEWAY_PEER_TIMEOUT_MS=1500 is invalid: expected from twice STEVEDORE_GATEWAY_PING_MS (2000)',
      );
      expect(() => read({ STEVEDORE_GATEWAY_PING_MS: String(2 ** 31) })).toThrow(
        "expected at most 2147483647 (Node's longest timer)",
      );
    }
  });

  it("checks a producer's gatewayKeepalive the same way", () => {
    expect(resolveKeepalive()).toEqual({ pingMs: 10_000, peerTimeoutMs: 35_000 });
    expect(resolveKeepalive({ pingMs: 200 })).toEqual({ pingMs: 200, peerTimeoutMs: 5_600 });
    expect(() => resolveKeepalive({ pingMs: 1_000, peerTimeoutMs: 1_000 })).toThrow(
      'the peer timeout must be a whole number of milliseconds from twice the ping interval (2000)',
    );
    expect(() => resolveKeepalive({ pingMs: 0 })).toThrow('the ping interval must be');
  });
});
