import { ImageUnavailableError } from './errors.js';
/**
 * Image references as Docker reads them (distribution's reference grammar): an optional
 * registry host, a repository path, and a tag and/or a digest. Pure: used to pick a job's
 * default pull policy, to match registry credentials by host, and to tell which of an image's
 * repo digests belongs to the reference.
 */

export const IMAGE_PULL_POLICIES = ['if-not-present', 'always', 'never'] as const;

export type ImagePullPolicy = (typeof IMAGE_PULL_POLICIES)[number];

/** Where an image without a registry host comes from, as Docker names it. */
export const DOCKER_HUB = 'docker.io';

/** The names Docker Hub goes by in references and in config.json `auths` keys. */
const HUB_ALIASES = new Set([
  'docker.io',
  'index.docker.io',
  'registry-1.docker.io',
  'registry.hub.docker.com',
]);

export interface ImageRef {
  /** Registry host (with port), normalized: Docker Hub is always "docker.io". */
  registry: string;
  /** Repository path in the registry; a one-part Hub name gets "library/". */
  repository: string;
  tag: string | null;
  /** "sha256:…" when the reference names one. */
  digest: string | null;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
/**
 * The digests the engine accepts (go-digest's algorithms, lower-case hex of the algorithm's
 * length); the grammar's looser `[0-9a-fA-F]{32,}` would pass what `docker pull` rejects.
 */
const DIGEST = /^(?:sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})$/;
const HOST =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$/;
/** Docker's own limit on a repository name. */
const MAX_NAME_CHARS = 255;

/** The reference a runtime loads, parsed; a malformed one is an image that cannot be had (reason `image`). */
export function requireImageRef(reference: string): ImageRef {
  const ref = parseImageRef(reference);
  if (typeof ref === 'string') {
    throw new ImageUnavailableError(
      `image reference ${JSON.stringify(reference)} is malformed: ${ref}; give a reference such as registry.example.com/team/app:1.2`,
    );
  }
  return ref;
}

/** Parses a reference; a string saying what is wrong with it when it is not one. */
export function parseImageRef(reference: string): ImageRef | string {
  let rest = reference;
  let digest: string | null = null;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) return `"${digest}" is not a digest (expected sha256:<64 hex digits>)`;
  }
  let tag: string | null = null;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag))
      return `"${tag}" is not a tag (letters, digits, _ . -, at most 128, not starting with . or -)`;
  }
  const parts = rest.split('/');
  let registry = DOCKER_HUB;
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    if (!HOST.test(first)) return `"${first}" is not a registry host`;
    // Host names are case-insensitive; auths keys are lower-cased too (registryOfAuthKey).
    const host = first.toLowerCase();
    registry = HUB_ALIASES.has(host) ? DOCKER_HUB : host;
    parts.shift();
  }
  const bad = parts.find((part) => !COMPONENT.test(part));
  if (bad !== undefined) {
    return bad === ''
      ? 'the repository name is empty or has an empty part'
      : `"${bad}" is not a repository name part (lower-case letters, digits and . _ -)`;
  }
  if (registry === DOCKER_HUB && parts.length === 1) parts.unshift('library');
  const repository = parts.join('/');
  if (repository.length > MAX_NAME_CHARS)
    return `the repository name is longer than ${MAX_NAME_CHARS} characters`;
  return { registry, repository, tag, digest };
}

/**
 * Whether the engine may read a reference as the id of an image it holds rather than a name:
 * Docker and Podman look up `sha256:<id>` and a bare hex prefix (`3f57d9401f8d`) among local
 * image ids when no image has that name, so such a reference runs whatever image has the id.
 */
export function isEngineImageId(reference: string): boolean {
  return /^(?:sha256:)?[0-9a-f]+$/.test(reference);
}

/**
 * The forms of a reference a policy pattern is matched against. By tag: as written and in full
 * (`busybox:1`, `docker.io/library/busybox:1`). By digest: the engine runs the digest whatever the
 * tag says, so only forms that carry it (`busybox@sha256:…`, and `busybox:1@sha256:…` when a tag
 * is written too): a pattern allows a digest only where it says so.
 */
export function policyForms(written: string, ref: ImageRef): string[] {
  if (ref.digest === null) return [written, canonicalRef(ref)];
  const names = [nameOf(written), `${ref.registry}/${ref.repository}`];
  const forms = names.map((name) => `${name}@${ref.digest}`);
  if (ref.tag !== null) forms.push(...names.map((name) => `${name}:${ref.tag}@${ref.digest}`));
  return forms;
}

/** The registry host a config.json `auths` key stands for ("https://index.docker.io/v1/" → "docker.io"). */
export function registryOfAuthKey(key: string): string {
  const host = key
    .replace(/^[a-z]+:\/\//i, '')
    .split('/')[0]
    ?.toLowerCase();
  return host && HUB_ALIASES.has(host) ? DOCKER_HUB : (host ?? '');
}

/**
 * The pull policy a job gets when it names none, as Kubernetes does it: `always` for a tag of
 * `latest` or no tag (it moves), `if-not-present` for any other tag or a digest.
 */
export function defaultPullPolicy(ref: ImageRef): ImagePullPolicy {
  if (ref.digest) return 'if-not-present';
  return ref.tag === null || ref.tag === 'latest' ? 'always' : 'if-not-present';
}

/** The reference in full ("docker.io/library/busybox:latest"): one key per image however it is written. */
export function canonicalRef(ref: ImageRef): string {
  const name = `${ref.registry}/${ref.repository}`;
  if (ref.digest) return `${name}@${ref.digest}`;
  return `${name}:${ref.tag ?? 'latest'}`;
}

/** Whether a repo digest the engine lists ("name@sha256:…") is of the reference's repository. */
export function sameRepository(repoDigest: string, ref: ImageRef): boolean {
  const parsed = parseImageRef(repoDigest);
  return (
    typeof parsed !== 'string' && parsed.registry === ref.registry && parsed.repository === ref.repository
  );
}

/** The reference as written without its tag or digest ("127.0.0.1:5000/team/app"). */
export function nameOf(reference: string): string {
  const bare = reference.split('@')[0] ?? reference;
  const colon = bare.lastIndexOf(':');
  return colon > bare.lastIndexOf('/') ? bare.slice(0, colon) : bare;
}
