import { isLoopback } from './auth.js';

/** Where the dashboard listens. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** A token shorter than this is refused: it would be guessed. */
export const MIN_TOKEN_LENGTH = 16;

export class DashboardConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DashboardConfigError';
  }
}

/**
 * The token from STEVEDORE_DASHBOARD_TOKEN, checked against the address: any address that is not
 * loopback needs one. Empty means unset. The message never repeats the token.
 */
export function checkDashboardAccess(listen: ListenAddress, token: string | undefined): string | undefined {
  const value = token === '' ? undefined : token;
  const where = `${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${listen.port}`;
  if (value !== undefined && value.length < MIN_TOKEN_LENGTH) {
    throw new DashboardConfigError(
      `STEVEDORE_DASHBOARD_TOKEN is too short (${value.length} characters): use at least ${MIN_TOKEN_LENGTH}, e.g. openssl rand -hex 32`,
    );
  }
  if (value === undefined && !isLoopback(listen.host)) {
    throw new DashboardConfigError(
      `dashboard: refusing to listen on ${where} without a token: an address other than loopback needs STEVEDORE_DASHBOARD_TOKEN (e.g. openssl rand -hex 32), or listen on 127.0.0.1`,
    );
  }
  return value;
}
