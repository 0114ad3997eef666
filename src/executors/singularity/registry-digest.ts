import type { ImageRef } from '../../jobs/image-ref.js';
import type { RegistryCredential } from '../registry-auth.js';

/** Manifest kinds a tag may resolve to; the registry answers with the digest of the one it has. */
const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** Plain HTTP only for loopback registries, the rule the Docker engine applies without configuration. */
export function registryBase(registry: string): string {
  const host = registry === 'docker.io' ? 'registry-1.docker.io' : registry;
  const loopback = /^(127\.|localhost(:|$)|\[::1\])/.test(host);
  return `${loopback ? 'http' : 'https'}://${host}`;
}

/** What the registry said, kept so the caller can tell "no such image" from "cannot reach". */
export class RegistryAnswerError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'RegistryAnswerError';
  }
}

function basic(credential: RegistryCredential | undefined): string | undefined {
  if (!credential?.username) return undefined;
  return `Basic ${Buffer.from(`${credential.username}:${credential.password ?? ''}`).toString('base64')}`;
}

/** A bearer token for the repository, by the registry's `WWW-Authenticate: Bearer realm=…` challenge. */
async function bearer(
  challenge: string,
  ref: ImageRef,
  credential: RegistryCredential | undefined,
  signal: AbortSignal,
): Promise<string> {
  const params = Object.fromEntries(
    [...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1] as string, m[2] as string]),
  );
  if (!params.realm) throw new RegistryAnswerError(`unsupported auth challenge: ${challenge}`, 401);
  const url = new URL(params.realm);
  if (params.service) url.searchParams.set('service', params.service);
  url.searchParams.set('scope', params.scope ?? `repository:${ref.repository}:pull`);
  const auth = basic(credential);
  const answer = await fetch(url, { headers: auth ? { authorization: auth } : {}, signal });
  if (!answer.ok) throw new RegistryAnswerError(`token request: HTTP ${answer.status}`, answer.status);
  const body = (await answer.json()) as { token?: string; access_token?: string };
  return `Bearer ${body.token ?? body.access_token ?? ''}`;
}

/**
 * The digest a tag names now (HEAD of its manifest, `Docker-Content-Digest`), with the worker's
 * credentials for the registry: the SIF cache's key for a `docker://` image.
 */
export async function resolveDigest(
  ref: ImageRef,
  credential: RegistryCredential | undefined,
  signal: AbortSignal,
): Promise<string> {
  if (ref.digest) return ref.digest;
  const url = `${registryBase(ref.registry)}/v2/${ref.repository}/manifests/${ref.tag ?? 'latest'}`;
  const ask = (authorization?: string) =>
    fetch(url, {
      method: 'HEAD',
      headers: { accept: ACCEPT, ...(authorization ? { authorization } : {}) },
      signal,
    });
  let answer = await ask(basic(credential));
  const challenge = answer.headers.get('www-authenticate') ?? '';
  if (answer.status === 401 && /^bearer/i.test(challenge)) {
    answer = await ask(await bearer(challenge, ref, credential, signal));
  }
  if (answer.status === 401 || answer.status === 403) {
    throw new RegistryAnswerError(
      `unauthorized: the registry refused ${credential ? "the worker's credentials" : 'an anonymous pull'} (HTTP ${answer.status})`,
      answer.status,
    );
  }
  if (answer.status === 404) throw new RegistryAnswerError('manifest unknown', 404);
  const digest = answer.headers.get('docker-content-digest');
  if (!answer.ok || !digest) {
    throw new RegistryAnswerError(`HTTP ${answer.status} without a Docker-Content-Digest`, answer.status);
  }
  return digest;
}
