import { describe, expect, it } from 'vitest';
import {
  canonicalRef,
  defaultPullPolicy,
  type ImageRef,
  nameOf,
  parseImageRef,
  registryOfAuthKey,
  sameRepository,
} from '../../src/jobs/image-ref.js';

const HEX = 'a1b2c3d4'.repeat(8);
const DIGEST = `sha256:${HEX}`;

/** The reference parsed, failing the test with the parser's own words when it is rejected. */
const ref = (reference: string): ImageRef => {
  const parsed = parseImageRef(reference);
  if (typeof parsed === 'string') throw new Error(`${reference} rejected: ${parsed}`);
  return parsed;
};

describe('parseImageRef: references as Docker reads them', () => {
  it.each<[string, ImageRef]>([
    ['busybox', { registry: 'docker.io', repository: 'library/busybox', tag: null, digest: null }],
    ['busybox:1.36', { registry: 'docker.io', repository: 'library/busybox', tag: '1.36', digest: null }],
    ['library/busybox', { registry: 'docker.io', repository: 'library/busybox', tag: null, digest: null }],
    [
      'docker.io/library/busybox:latest',
      { registry: 'docker.io', repository: 'library/busybox', tag: 'latest', digest: null },
    ],
    ['docker.io/busybox', { registry: 'docker.io', repository: 'library/busybox', tag: null, digest: null }],
    ['index.docker.io/x/y', { registry: 'docker.io', repository: 'x/y', tag: null, digest: null }],
    [
      'registry-1.docker.io/busybox:1',
      { registry: 'docker.io', repository: 'library/busybox', tag: '1', digest: null },
    ],
    ['localhost/app', { registry: 'localhost', repository: 'app', tag: null, digest: null }],
    ['localhost:5000/a/b:t', { registry: 'localhost:5000', repository: 'a/b', tag: 't', digest: null }],
    [
      `127.0.0.1:5000/team/app@${DIGEST}`,
      { registry: '127.0.0.1:5000', repository: 'team/app', tag: null, digest: DIGEST },
    ],
    [`name:tag@${DIGEST}`, { registry: 'docker.io', repository: 'library/name', tag: 'tag', digest: DIGEST }],
    ['[::1]:5000/a', { registry: '[::1]:5000', repository: 'a', tag: null, digest: null }],
    ['ghcr.io/org/app:v1.2.3', { registry: 'ghcr.io', repository: 'org/app', tag: 'v1.2.3', digest: null }],
    // A first part without a dot, a colon or "localhost" is a path, not a host.
    ['team/app:2', { registry: 'docker.io', repository: 'team/app', tag: '2', digest: null }],
    // One part and a colon: the colon starts a tag, as in Docker.
    ['localhost:5000', { registry: 'docker.io', repository: 'library/localhost', tag: '5000', digest: null }],
    ['a_b-c__d/e.f---g', { registry: 'docker.io', repository: 'a_b-c__d/e.f---g', tag: null, digest: null }],
  ])('%s', (reference, expected) => {
    expect(parseImageRef(reference)).toEqual(expected);
  });

  it('takes a tag of 128 characters, and one starting with _ or a digit', () => {
    expect(ref(`app:${'t'.repeat(128)}`).tag).toHaveLength(128);
    expect(ref('app:_x').tag).toBe('_x');
    expect(ref('app:1.0-rc.1_b').tag).toBe('1.0-rc.1_b');
  });

  it.each<[string, string, RegExp]>([
    ['upper case in the repository', 'Busybox', /"Busybox" is not a repository name part.*lower-case/],
    ['upper case after a host', 'ghcr.io/Org/app', /"Org" is not a repository name part/],
    ['an empty part', 'a//b', /empty part/],
    ['a leading slash', '/busybox', /empty part/],
    ['a trailing slash', 'busybox/', /empty part/],
    ['nothing but a host', 'ghcr.io/', /empty part/],
    ['an empty reference', '', /empty/],
    ['a trailing ":"', 'busybox:', /"" is not a tag/],
    ['a tag starting with .', 'busybox:.x', /"\.x" is not a tag.*not starting with \. or -/],
    ['a tag starting with -', 'busybox:-x', /"-x" is not a tag/],
    ['a tag of 129 characters', `busybox:${'t'.repeat(129)}`, /is not a tag.*at most 128/],
    ['a tag with a +', 'busybox:1+2', /"1\+2" is not a tag/],
    ['a trailing "@"', 'busybox@', /"" is not a digest/],
    ['a digest too short', 'busybox@sha256:abc', /"sha256:abc" is not a digest.*64 hex/],
    ['a digest without algorithm', `busybox@${HEX}`, /is not a digest/],
    ['a digest of non-hex', `busybox@sha256:${'z'.repeat(64)}`, /is not a digest/],
    ['a sha256 digest of 63 digits', `busybox@sha256:${HEX.slice(1)}`, /is not a digest/],
    ['a sha256 digest of 65 digits', `busybox@sha256:${HEX}0`, /is not a digest/],
    ['a digest in upper case', `busybox@sha256:${HEX.toUpperCase()}`, /is not a digest/],
    ['a host with a bad port', 'example.com:port/app', /"example.com:port" is not a registry host/],
    ['a host with an underscore', 'my_reg.example.com/app', /"my_reg.example.com" is not a registry host/],
    ['a repository part ending in .', 'team/app.', /"app\." is not a repository name part/],
    // A first part with a dot is a host, as in Docker: "my_team.x/app" cannot be a repository.
    ['a dotted first part that is no host', 'my_team.x/app', /"my_team.x" is not a registry host/],
    ['a repository too long', `reg.example.com/${'a'.repeat(256)}`, /longer than 255 characters/],
  ])('rejects %s, saying what is wrong', (_what, reference, expected) => {
    const parsed = parseImageRef(reference);
    expect(typeof parsed).toBe('string');
    expect(parsed).toMatch(expected);
  });

  it('whitespace (rejected by the spec first) is never taken as part of a name', () => {
    expect(parseImageRef('busybox ')).toMatch(/"busybox " is not a repository name part/);
    expect(parseImageRef(' busybox')).toMatch(/" busybox" is not a repository name part/);
    expect(parseImageRef('busybox:1 ')).toMatch(/"1 " is not a tag/);
    expect(parseImageRef('busy box')).toMatch(/is not a repository name part/);
  });

  it('the registry host is case-insensitive: upper case is read as lower case', () => {
    expect(ref('GHCR.io/org/app').registry).toBe('ghcr.io');
    expect(ref('Docker.IO/x/y')).toMatchObject({ registry: 'docker.io', repository: 'x/y' });
  });
});

describe('defaultPullPolicy: Kubernetes defaults', () => {
  it.each([
    ['busybox', 'always'],
    ['busybox:latest', 'always'],
    ['localhost:5000/a/b', 'always'],
    ['busybox:1.36', 'if-not-present'],
    ['busybox:Latest', 'if-not-present'],
    [`busybox@${DIGEST}`, 'if-not-present'],
    [`busybox:latest@${DIGEST}`, 'if-not-present'],
  ])('%s → %s', (reference, policy) => {
    expect(defaultPullPolicy(ref(reference))).toBe(policy);
  });
});

describe('canonicalRef: one key per image however it is written', () => {
  it('busybox, library/busybox, docker.io/… and the Hub aliases are one image', () => {
    const keys = [
      'busybox',
      'busybox:latest',
      'library/busybox',
      'docker.io/busybox',
      'docker.io/library/busybox:latest',
      'index.docker.io/library/busybox',
      'registry-1.docker.io/library/busybox:latest',
    ].map((r) => canonicalRef(ref(r)));
    expect(new Set(keys)).toEqual(new Set(['docker.io/library/busybox:latest']));
  });

  it('keeps the host and port, the tag, and a digest over a tag', () => {
    expect(canonicalRef(ref('localhost:5000/a/b:t'))).toBe('localhost:5000/a/b:t');
    expect(canonicalRef(ref('busybox:1.36'))).toBe('docker.io/library/busybox:1.36');
    expect(canonicalRef(ref(`busybox:1.36@${DIGEST}`))).toBe(`docker.io/library/busybox@${DIGEST}`);
  });

  it('another registry or tag is another image', () => {
    expect(canonicalRef(ref('ghcr.io/busybox'))).not.toBe(canonicalRef(ref('busybox')));
    expect(canonicalRef(ref('busybox:1'))).not.toBe(canonicalRef(ref('busybox:2')));
  });
});

describe('sameRepository: which repo digest the engine lists is the reference’s', () => {
  it('a familiar repo digest is of the full Hub name, and the other way round', () => {
    expect(sameRepository(`busybox@${DIGEST}`, ref('docker.io/library/busybox'))).toBe(true);
    expect(sameRepository(`docker.io/library/busybox@${DIGEST}`, ref('busybox:1.36'))).toBe(true);
    expect(sameRepository(`127.0.0.1:5000/team/app@${DIGEST}`, ref('127.0.0.1:5000/team/app:v1'))).toBe(true);
  });

  it('another registry, repository or a malformed digest is not', () => {
    expect(sameRepository(`127.0.0.1:5001/team/app@${DIGEST}`, ref('127.0.0.1:5000/team/app'))).toBe(false);
    expect(sameRepository(`127.0.0.1:5000/busybox@${DIGEST}`, ref('busybox'))).toBe(false);
    expect(sameRepository(`team/other@${DIGEST}`, ref('team/app'))).toBe(false);
    expect(sameRepository('busybox@sha256:nope', ref('busybox'))).toBe(false);
  });
});

describe('registryOfAuthKey: config.json auths keys', () => {
  it.each([
    ['https://index.docker.io/v1/', 'docker.io'],
    ['index.docker.io', 'docker.io'],
    ['docker.io', 'docker.io'],
    ['registry-1.docker.io', 'docker.io'],
    ['https://registry.hub.docker.com', 'docker.io'],
    ['127.0.0.1:5000', '127.0.0.1:5000'],
    ['http://127.0.0.1:5000/v2/', '127.0.0.1:5000'],
    ['http://reg.example.com/v2/', 'reg.example.com'],
    ['https://REG.Example.com', 'reg.example.com'],
    ['', ''],
  ])('%s → %s', (key, host) => {
    expect(registryOfAuthKey(key)).toBe(host);
  });
});

describe('nameOf: the reference as written, without tag or digest', () => {
  it.each([
    ['busybox', 'busybox'],
    ['busybox:1.36', 'busybox'],
    ['localhost:5000/a/b:t', 'localhost:5000/a/b'],
    ['localhost:5000/a', 'localhost:5000/a'],
    [`127.0.0.1:5000/team/app@${DIGEST}`, '127.0.0.1:5000/team/app'],
    [`name:tag@${DIGEST}`, 'name'],
    ['[::1]:5000/a:1', '[::1]:5000/a'],
  ])('%s → %s', (reference, name) => {
    expect(nameOf(reference)).toBe(name);
  });
});
