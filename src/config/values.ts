import { ConfigError } from './errors.js';
import type { SettingName, SettingReader } from './settings.js';

/** A whole number of at least `min`, or `fallback` when unset or empty; else a ConfigError naming it. */
export function wholeNumber(get: SettingReader, name: SettingName, fallback: number, min = 1): number {
  const value = get(name);
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new ConfigError(`${name}=${JSON.stringify(value)} is invalid: expected a whole number >= ${min}`);
  }
  return n;
}

/** One of `choices`, or `fallback` when unset or empty; else a ConfigError listing them. */
export function oneOf<T extends string>(
  get: SettingReader,
  name: SettingName,
  choices: readonly T[],
  fallback: T,
): T {
  const value = get(name) || fallback;
  if (!(choices as readonly string[]).includes(value)) {
    const quoted = choices.map((c) => JSON.stringify(c));
    const expected =
      quoted.length > 2 ? `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}` : quoted.join(' or ');
    throw new ConfigError(`${name}=${JSON.stringify(value)} is invalid: expected ${expected}`);
  }
  return value as T;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** LOG_LEVEL, or `fallback` when unset; a ConfigError for a level pino does not know. */
export function logLevelOf(get: SettingReader, fallback = 'info'): string {
  const logLevel = get('LOG_LEVEL') || fallback;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(
      `LOG_LEVEL=${JSON.stringify(logLevel)} is invalid: expected one of ${LOG_LEVELS.join(', ')}`,
    );
  }
  return logLevel;
}
