import { readFileSync, statSync } from 'node:fs';
import { coerceError } from '../jobs/errors.js';
import { parseImageRef, registryOfAuthKey } from '../jobs/image-ref.js';

/**
 * Registry credentials held by the worker (never carried in a job), read from a Docker
 * `config.json`: `{ "auths": { "<registry>": { "auth": base64("user:password") } } }`, or
 * `username`/`password`, or an `identitytoken`. Matched by registry host; Docker Hub's aliases
 * are one host. Shared by every runtime that pulls from registries.
 */

/** What the engine's pull takes as X-Registry-Auth. Secret: never logged (see toJSON). */
export interface RegistryCredential {
  username?: string;
  password?: string;
  identitytoken?: string;
  serveraddress: string;
}

export class RegistryAuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RegistryAuthError';
  }
}

interface AuthEntry {
  auth?: unknown;
  username?: unknown;
  password?: unknown;
  identitytoken?: unknown;
}

/** Parses a config.json's text; throws RegistryAuthError naming the file and the entry at fault. */
export function parseDockerConfig(text: string, path: string): Map<string, RegistryCredential> {
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (error) {
    throw new RegistryAuthError(`registry credentials ${path} are not JSON: ${coerceError(error).message}`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new RegistryAuthError(`registry credentials ${path} must hold a JSON object with "auths"`);
  }
  const auths = (config as { auths?: unknown }).auths ?? {};
  if (typeof auths !== 'object' || auths === null || Array.isArray(auths)) {
    throw new RegistryAuthError(
      `registry credentials ${path}: "auths" must be an object of registry → entry`,
    );
  }
  const found = new Map<string, RegistryCredential>();
  for (const [key, value] of Object.entries(auths as Record<string, unknown>)) {
    const where = `registry credentials ${path}, auths[${JSON.stringify(key)}]`;
    const host = registryOfAuthKey(key);
    if (host === '') throw new RegistryAuthError(`${where}: the key names no registry host`);
    if (typeof value !== 'object' || value === null)
      throw new RegistryAuthError(`${where} must be an object`);
    found.set(host, credentialOf(value as AuthEntry, key, where));
  }
  return found;
}

function credentialOf(entry: AuthEntry, serveraddress: string, where: string): RegistryCredential {
  if (typeof entry.identitytoken === 'string' && entry.identitytoken !== '') {
    return { identitytoken: entry.identitytoken, serveraddress };
  }
  if (typeof entry.auth === 'string' && entry.auth !== '') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw new RegistryAuthError(`${where}.auth must be base64 of "user:password"`);
    return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1), serveraddress };
  }
  if (typeof entry.username === 'string' && typeof entry.password === 'string') {
    return { username: entry.username, password: entry.password, serveraddress };
  }
  throw new RegistryAuthError(
    `${where} has no credentials: give "auth" (base64 of user:password), or "username" and "password"`,
  );
}

/**
 * The credentials of one file, read when the worker starts (a bad file stops it there) and read
 * again when the file changes, so rotated passwords apply without a restart. A file that turns
 * bad later keeps the last good credentials, and says so through `onReloadError`.
 */
export class RegistryCredentials {
  private byHost = new Map<string, RegistryCredential>();
  private seen = '';

  private constructor(
    readonly path: string | null,
    private readonly onReloadError: (message: string) => void,
  ) {}

  /** No credentials: every pull is anonymous. */
  static none(): RegistryCredentials {
    return new RegistryCredentials(null, () => undefined);
  }

  /** Reads `path`; when `required` is false, a file that is not there means none. */
  static load(
    path: string,
    options: { required: boolean; onReloadError?: (message: string) => void },
  ): RegistryCredentials {
    const credentials = new RegistryCredentials(path, options.onReloadError ?? (() => undefined));
    const stamp = stampOf(path);
    if (stamp === null) {
      if (options.required) {
        throw new RegistryAuthError(
          `registry credentials ${path} cannot be read: give a Docker config.json there, or unset STEVEDORE_REGISTRY_AUTH`,
        );
      }
      credentials.seen = 'gone'; // absent from the start is no change to warn about; appearing is
      return credentials;
    }
    credentials.read(stamp);
    return credentials;
  }

  /** The registry hosts there are credentials for (safe to log). */
  get hosts(): string[] {
    return [...this.byHost.keys()];
  }

  /** The credential for the registry an image reference names; undefined = pull anonymously. */
  forImage(image: string): RegistryCredential | undefined {
    const ref = parseImageRef(image);
    if (typeof ref === 'string') return undefined;
    this.refresh();
    return this.byHost.get(ref.registry);
  }

  /** What a log line or an error may show of this object: never a secret. */
  toJSON(): { path: string | null; hosts: string[] } {
    return { path: this.path, hosts: this.hosts };
  }

  private refresh(): void {
    if (this.path === null) return;
    const stamp = stampOf(this.path) ?? 'gone';
    if (stamp === this.seen) return;
    try {
      if (stamp === 'gone') throw new RegistryAuthError(`registry credentials ${this.path} are gone`);
      this.read(stamp);
    } catch (error) {
      this.seen = stamp; // said once per change, not once per pull
      this.onReloadError(`${coerceError(error).message}; the credentials read before stay in use`);
    }
  }

  private read(stamp: string): void {
    const path = this.path as string;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      throw new RegistryAuthError(
        `registry credentials ${path} cannot be read: ${coerceError(error).message}`,
      );
    }
    this.byHost = parseDockerConfig(text, path);
    this.seen = stamp;
  }
}

/** Changes whenever the file is rewritten; null when it is not there. */
function stampOf(path: string): string | null {
  try {
    const info = statSync(path);
    return `${info.mtimeMs}:${info.size}:${info.ino}`;
  } catch {
    return null;
  }
}
