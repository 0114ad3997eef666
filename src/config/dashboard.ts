import type { Env } from './env.js';
import { type HttpAddress, parseHttpAddress } from './http-address.js';
import { settingReader } from './settings.js';
import { logLevelOf } from './values.js';

/** The dashboard's port by default: one above the worker endpoint's 9464 (compose), free of the usual exporters. */
export const DEFAULT_DASHBOARD_PORT = 9465;

/** What `stevedore dashboard` runs with (its Redis and queue are the client's: loadClientConfig). */
export interface DashboardConfig {
  /** --listen, else 127.0.0.1:9465. */
  listen: HttpAddress;
  /** STEVEDORE_DASHBOARD_TOKEN as set (empty counts as unset); checked against the address by the dashboard. */
  token?: string;
  logLevel: string;
}

/** The dashboard's settings from its flags and the environment; a ConfigError names the bad one. */
export function loadDashboardConfig(
  env: Env,
  flags: { listen?: string; logLevel?: string },
): DashboardConfig {
  const get = settingReader(env, flags.logLevel === undefined ? {} : { LOG_LEVEL: flags.logLevel });
  return {
    listen: flags.listen
      ? parseHttpAddress(flags.listen, '--listen')
      : { host: '127.0.0.1', port: DEFAULT_DASHBOARD_PORT },
    token: get('STEVEDORE_DASHBOARD_TOKEN'),
    logLevel: logLevelOf(get),
  };
}
