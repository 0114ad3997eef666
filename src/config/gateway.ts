import { networkInterfaces } from 'node:os';
import {
  DEFAULT_PING_MS,
  defaultPeerTimeoutMs,
  type Keepalive,
  keepaliveProblem,
  MAX_KEEPALIVE_MS,
  MIN_PING_MS,
} from '../jobs/gateway/keepalive.js';
import { ConfigError } from './errors.js';
import { type HttpAddress, parseHttpAddress } from './http-address.js';
import type { SettingReader } from './settings.js';
import { wholeNumber } from './values.js';

/** STEVEDORE_GATEWAY and its companions: where the exec gateway listens and how clients reach it. */
export interface GatewayConfig {
  /** Where the gateway listens. */
  listen: HttpAddress;
  /**
   * The address registered for clients: STEVEDORE_GATEWAY_ADVERTISE, else the listen address, or
   * when that is a wildcard (0.0.0.0, ::), which no client can dial: this host's first external
   * IPv4 address (a compose replica's address on its network), else its name.
   */
  advertise: HttpAddress;
  /** PEM files; set: sessions are TLS. */
  tls?: { cert: string; key: string };
  /** STEVEDORE_GATEWAY_PING_MS and STEVEDORE_GATEWAY_PEER_TIMEOUT_MS. */
  keepalive: Keepalive;
}

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

/**
 * Reads the gateway's settings; undefined when STEVEDORE_GATEWAY is unset (the default: no
 * gateway). A companion set without it, or a certificate without its key, is a ConfigError.
 */
export function gatewayConfig(
  get: SettingReader,
  host: { name: string; address: string | undefined },
): GatewayConfig | undefined {
  const value = get('STEVEDORE_GATEWAY');
  const cert = get('STEVEDORE_GATEWAY_TLS_CERT') || undefined;
  const key = get('STEVEDORE_GATEWAY_TLS_KEY') || undefined;
  const advertised = get('STEVEDORE_GATEWAY_ADVERTISE') || undefined;
  if (!value) {
    const stray = [
      cert && 'STEVEDORE_GATEWAY_TLS_CERT',
      key && 'STEVEDORE_GATEWAY_TLS_KEY',
      advertised && 'STEVEDORE_GATEWAY_ADVERTISE',
    ].filter(Boolean);
    if (stray.length > 0)
      throw new ConfigError(
        `${stray.join(' and ')} ${stray.length > 1 ? 'are' : 'is'} set but STEVEDORE_GATEWAY is not: set STEVEDORE_GATEWAY=host:port to serve the gateway, or unset ${stray.length > 1 ? 'them' : 'it'}`,
      );
    return undefined;
  }
  if (Boolean(cert) !== Boolean(key))
    throw new ConfigError(
      `${cert ? 'STEVEDORE_GATEWAY_TLS_CERT' : 'STEVEDORE_GATEWAY_TLS_KEY'} is set without ${cert ? 'STEVEDORE_GATEWAY_TLS_KEY' : 'STEVEDORE_GATEWAY_TLS_CERT'}: the gateway's TLS needs both the certificate and its key (PEM files)`,
    );
  const listen = parseHttpAddress(value, 'STEVEDORE_GATEWAY');
  return {
    listen,
    advertise: advertised
      ? advertiseAddress(advertised, listen.port)
      : {
          host: WILDCARDS.has(listen.host) ? (host.address ?? host.name) : listen.host,
          port: listen.port,
        },
    ...(cert && key ? { tls: { cert, key } } : {}),
    keepalive: gatewayKeepalive(get),
  };
}

/**
 * STEVEDORE_GATEWAY_PING_MS and STEVEDORE_GATEWAY_PEER_TIMEOUT_MS, read by the worker and by
 * client commands alike (each side pings, and each gives up on a silent peer).
 */
export function gatewayKeepalive(get: SettingReader): Keepalive {
  const pingMs = wholeNumber(get, 'STEVEDORE_GATEWAY_PING_MS', DEFAULT_PING_MS, MIN_PING_MS);
  const keepalive = {
    pingMs,
    peerTimeoutMs: wholeNumber(get, 'STEVEDORE_GATEWAY_PEER_TIMEOUT_MS', defaultPeerTimeoutMs(pingMs)),
  };
  if (pingMs > MAX_KEEPALIVE_MS)
    throw new ConfigError(
      `STEVEDORE_GATEWAY_PING_MS=${pingMs} is invalid: expected at most ${MAX_KEEPALIVE_MS} (Node's longest timer)`,
    );
  if (keepaliveProblem(keepalive))
    throw new ConfigError(
      `STEVEDORE_GATEWAY_PEER_TIMEOUT_MS=${keepalive.peerTimeoutMs} is invalid: expected from twice STEVEDORE_GATEWAY_PING_MS (${2 * pingMs}) to ${MAX_KEEPALIVE_MS}; a shorter one could take a live, quiet peer for gone between two pings`,
    );
  return keepalive;
}

/** `host` or `host:port` (`[v6]:port`); a bare host keeps the listen port. */
function advertiseAddress(value: string, listenPort: number): HttpAddress {
  const trimmed = value.trim();
  const hostOnly = /^(?:\[([^\]]+)\]|([^:[\]\s]+))$/.exec(trimmed);
  if (hostOnly) return { host: hostOnly[1] ?? (hostOnly[2] as string), port: listenPort };
  const address = parseHttpAddress(trimmed, 'STEVEDORE_GATEWAY_ADVERTISE');
  if (!/^(\[[^\]]+\]|[^:[\]]+):\d+$/.test(trimmed) || WILDCARDS.has(address.host))
    throw new ConfigError(
      `STEVEDORE_GATEWAY_ADVERTISE=${JSON.stringify(value)} is invalid: name the host (and port) clients dial to reach this worker's gateway, e.g. worker-3.example.com or 10.0.0.7:9470`,
    );
  return address;
}

/** This host's first IPv4 address that is not loopback, as other hosts (or containers) reach it. */
export function externalAddress(): string | undefined {
  for (const addresses of Object.values(networkInterfaces())) {
    const found = addresses?.find((a) => a.family === 'IPv4' && !a.internal);
    if (found) return found.address;
  }
  return undefined;
}
