import { ConfigError } from './errors.js';

/** A host and port to listen on or to ask. */
export interface HttpAddress {
  host: string;
  port: number;
}

/**
 * `host:port`, `[v6]:port` or a bare `:port` / `port` (loopback: the endpoint tells about the
 * host's jobs, so any other address must be asked for by name). Throws naming `variable`.
 */
export function parseHttpAddress(value: string, variable = 'STEVEDORE_HTTP'): HttpAddress {
  const m = /^(?:(?:\[([^\]]+)\]|([^:[\]]*)):)?(\d+)$/.exec(value.trim());
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65_535) {
    throw new ConfigError(
      `${variable}=${JSON.stringify(value)} is invalid: expected host:port with a port from 1 to 65535 (e.g. 127.0.0.1:9464, or 0.0.0.0:9464 to listen on every address)`,
    );
  }
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}
