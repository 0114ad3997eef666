import { mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  parseDockerConfig,
  RegistryAuthError,
  RegistryCredentials,
} from '../../src/executors/registry-auth.js';
import { coerceError } from '../../src/jobs/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'stevedore-auth-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
/** A fresh config.json path in the test's own directory. */
const freshPath = (): string => join(dir, `config-${++files}.json`);

const b64 = (text: string): string => Buffer.from(text).toString('base64');
const config = (auths: Record<string, unknown>): string => JSON.stringify({ auths });

/** Writes through a new file renamed into place: a new inode, as an editor or a Secret update does. */
const replace = (path: string, text: string): void => {
  const next = `${path}.next`;
  writeFileSync(next, text);
  renameSync(next, path);
};

const thrown = (fn: () => unknown): Error => {
  try {
    fn();
  } catch (error) {
    return coerceError(error);
  }
  throw new Error('expected it to throw');
};

describe('parseDockerConfig', () => {
  it('reads base64 user:password, keeping every ":" after the first in the password', () => {
    const found = parseDockerConfig(config({ '127.0.0.1:5000': { auth: b64('ci:pa:ss:word') } }), 'c.json');
    expect(found.get('127.0.0.1:5000')).toEqual({
      username: 'ci',
      password: 'pa:ss:word',
      serveraddress: '127.0.0.1:5000',
    });
  });

  it('reads username/password and identitytoken entries; the token wins over a password', () => {
    const found = parseDockerConfig(
      config({
        'reg.example.com': { username: 'u', password: 'p' },
        'https://tok.example.com/v2/': { identitytoken: 'tkn', auth: b64('u:p') },
      }),
      'c.json',
    );
    expect(found.get('reg.example.com')).toEqual({
      username: 'u',
      password: 'p',
      serveraddress: 'reg.example.com',
    });
    expect(found.get('tok.example.com')).toEqual({
      identitytoken: 'tkn',
      serveraddress: 'https://tok.example.com/v2/',
    });
  });

  it("files Docker Hub's alias keys under docker.io, keeping the key as the server address", () => {
    const found = parseDockerConfig(config({ 'https://index.docker.io/v1/': { auth: b64('hub:pw') } }), 'c');
    expect([...found.keys()]).toEqual(['docker.io']);
    expect(found.get('docker.io')?.serveraddress).toBe('https://index.docker.io/v1/');
  });

  it('a file without auths, or with entries of other tools beside them, means no credentials', () => {
    expect(parseDockerConfig('{}', 'c').size).toBe(0);
    expect(parseDockerConfig(JSON.stringify({ credsStore: 'desktop', auths: {} }), 'c').size).toBe(0);
  });

  it.each<[string, string, RegExp]>([
    ['not JSON', '{"auths": ', /registry credentials \/etc\/auth\.json are not JSON: /],
    ['a JSON array', '[]', /\/etc\/auth\.json must hold a JSON object with "auths"/],
    ['auths not an object', '{"auths": ["reg"]}', /\/etc\/auth\.json: "auths" must be an object/],
    ['auths a string', '{"auths": "reg"}', /\/etc\/auth\.json: "auths" must be an object/],
    [
      'an entry that is not an object',
      config({ 'reg.example.com': 'user:pw' }),
      /\/etc\/auth\.json, auths\["reg\.example\.com"\] must be an object/,
    ],
    [
      'an entry without credentials',
      config({ 'reg.example.com': { email: 'a@b' } }),
      /\/etc\/auth\.json, auths\["reg\.example\.com"\] has no credentials: give "auth" \(base64 of user:password\), or "username" and "password"/,
    ],
    [
      'a username without password',
      config({ 'reg.example.com': { username: 'u' } }),
      /auths\["reg\.example\.com"\] has no credentials/,
    ],
    [
      'auth that is not "user:pass"',
      config({ 'reg.example.com': { auth: b64('nocolon') } }),
      /\/etc\/auth\.json, auths\["reg\.example\.com"\]\.auth must be base64 of "user:password"/,
    ],
    [
      'auth with an empty user',
      config({ 'reg.example.com': { auth: b64(':pw') } }),
      /auths\["reg\.example\.com"\]\.auth must be base64 of "user:password"/,
    ],
    [
      'a key with no host',
      config({ 'https://': { auth: b64('u:p') } }),
      /auths\["https:\/\/"\]: the key names no registry host/,
    ],
  ])('rejects %s, naming the file and the entry', (_what, text, expected) => {
    const error = thrown(() => parseDockerConfig(text, '/etc/auth.json'));
    expect(error).toBeInstanceOf(RegistryAuthError);
    expect(error.name).toBe('RegistryAuthError');
    expect(error.message).toMatch(expected);
  });

  it('an error never shows the secret it could not read', () => {
    const error = thrown(() =>
      parseDockerConfig(config({ 'reg.example.com': { auth: b64('s3cr3tNoColon') } }), 'c'),
    );
    expect(error.message).not.toContain('s3cr3t');
    expect(error.message).not.toContain(b64('s3cr3tNoColon'));
  });
});

describe('RegistryCredentials', () => {
  it('a required file that is not there stops the worker, naming the file', () => {
    const path = join(dir, 'missing.json');
    const error = thrown(() => RegistryCredentials.load(path, { required: true }));
    expect(error).toBeInstanceOf(RegistryAuthError);
    expect(error.message).toContain(path);
    expect(error.message).toContain('STEVEDORE_REGISTRY_AUTH');
  });

  it('a bad file at start stops the worker with the parse error', () => {
    const path = freshPath();
    writeFileSync(path, 'not json');
    expect(() => RegistryCredentials.load(path, { required: false })).toThrow(/are not JSON/);
  });

  it('an optional file that is not there means anonymous pulls, and no reload warning', () => {
    const reloadErrors: string[] = [];
    const credentials = RegistryCredentials.load(join(dir, 'absent.json'), {
      required: false,
      onReloadError: (message) => reloadErrors.push(message),
    });
    expect(credentials.hosts).toEqual([]);
    expect(credentials.forImage('busybox')).toBeUndefined();
    expect(credentials.forImage('127.0.0.1:5000/a')).toBeUndefined();
    expect(reloadErrors).toEqual([]);
  });

  it('an optional file that appears later is read at the next pull', () => {
    const path = freshPath();
    const credentials = RegistryCredentials.load(path, { required: false });
    expect(credentials.forImage('127.0.0.1:5000/a')).toBeUndefined();
    replace(path, config({ '127.0.0.1:5000': { auth: b64('u:late') } }));
    expect(credentials.forImage('127.0.0.1:5000/a')?.password).toBe('late');
  });

  it('matches by registry host, the Hub aliases being one host', () => {
    const path = freshPath();
    writeFileSync(
      path,
      config({
        'https://index.docker.io/v1/': { auth: b64('hub:hubpw') },
        '127.0.0.1:5000': { auth: b64('loc:locpw') },
        'http://reg.example.com/v2/': { username: 'r', password: 'regpw' },
      }),
    );
    const credentials = RegistryCredentials.load(path, { required: true });
    expect(credentials.hosts.sort()).toEqual(['127.0.0.1:5000', 'docker.io', 'reg.example.com']);
    for (const image of [
      'busybox',
      'busybox:1.36',
      'docker.io/x/y',
      'index.docker.io/x/y:1',
      'library/busybox',
    ]) {
      expect(credentials.forImage(image)?.password, image).toBe('hubpw');
    }
    expect(credentials.forImage('127.0.0.1:5000/team/app:v1')?.password).toBe('locpw');
    expect(credentials.forImage(`127.0.0.1:5000/team/app@sha256:${'0'.repeat(64)}`)?.username).toBe('loc');
    expect(credentials.forImage('reg.example.com/app')?.password).toBe('regpw');
    expect(credentials.forImage('REG.example.com/app')?.password).toBe('regpw');
  });

  it('a reference with no entry, another port, or a malformed reference pulls anonymously', () => {
    const path = freshPath();
    writeFileSync(path, config({ '127.0.0.1:5000': { auth: b64('u:p') } }));
    const credentials = RegistryCredentials.load(path, { required: true });
    expect(credentials.forImage('ghcr.io/org/app')).toBeUndefined();
    expect(credentials.forImage('127.0.0.1:5001/a')).toBeUndefined();
    expect(credentials.forImage('busybox')).toBeUndefined();
    expect(credentials.forImage('127.0.0.1:5000/Bad')).toBeUndefined();
  });

  it('RegistryCredentials.none() has no hosts and no path', () => {
    const none = RegistryCredentials.none();
    expect(none.forImage('busybox')).toBeUndefined();
    expect(none.toJSON()).toEqual({ path: null, hosts: [] });
  });

  it('reads the file again when it changes: a rotated password applies at the next pull', () => {
    const path = freshPath();
    writeFileSync(path, config({ '127.0.0.1:5000': { auth: b64('ci:old-password') } }));
    const credentials = RegistryCredentials.load(path, { required: true });
    expect(credentials.forImage('127.0.0.1:5000/a')?.password).toBe('old-password');
    replace(path, config({ '127.0.0.1:5000': { auth: b64('ci:new-password') } }));
    expect(credentials.forImage('127.0.0.1:5000/a')?.password).toBe('new-password');
    // Rewritten in place (same inode). Not the same size: a same-size rewrite within one
    // file-clock tick (~4 ms on ext4) keeps the stamp, and waits for the next change.
    writeFileSync(path, config({ '127.0.0.1:5000': { auth: b64('ci:newer-password') } }));
    expect(credentials.forImage('127.0.0.1:5000/a')?.password).toBe('newer-password');
    // A host added.
    writeFileSync(path, config({ '127.0.0.1:5000': { auth: b64('ci:p') }, 'ghcr.io': { auth: b64('g:h') } }));
    expect(credentials.forImage('ghcr.io/o/a')?.password).toBe('h');
    expect(credentials.hosts.sort()).toEqual(['127.0.0.1:5000', 'ghcr.io']);
  });

  it('a file turned bad keeps the old credentials and says so once per change', () => {
    const path = freshPath();
    const reloadErrors: string[] = [];
    writeFileSync(path, config({ '127.0.0.1:5000': { auth: b64('ci:good') } }));
    const credentials = RegistryCredentials.load(path, {
      required: true,
      onReloadError: (message) => reloadErrors.push(message),
    });
    replace(path, '{"auths": {');
    expect(credentials.forImage('127.0.0.1:5000/a')?.password).toBe('good');
    expect(credentials.forImage('127.0.0.1:5000/b')?.password).toBe('good');
    expect(reloadErrors).toHaveLength(1);
    expect(reloadErrors[0]).toMatch(/are not JSON.*the credentials read before stay in use/);
    expect(reloadErrors[0]).toContain(path);

    replace(path, config({ '127.0.0.1:5000': { username: 'ci' } }));
    expect(credentials.forImage('127.0.0.1:5000/a')?.password).toBe('good');
    expect(reloadErrors).toHaveLength(2);
    expect(reloadErrors[1]).toMatch(/has no credentials/);

    unlinkSync(path);
    expect(credentials.forImage('127.0.0.1:5000/a')?.password).toBe('good');
    expect(reloadErrors).toHaveLength(3);
    expect(reloadErrors[2]).toMatch(/are gone/);

    replace(path, config({ '127.0.0.1:5000': { auth: b64('ci:fixed') } }));
    expect(credentials.forImage('127.0.0.1:5000/a')?.password).toBe('fixed');
    expect(reloadErrors).toHaveLength(3);
  });

  it('JSON.stringify shows the path and the hosts, never a password, token or base64 auth', () => {
    const path = freshPath();
    const auth = b64('ci:hunter2-secret');
    writeFileSync(
      path,
      config({
        '127.0.0.1:5000': { auth },
        'reg.example.com': { username: 'u', password: 'plain-secret' },
        'tok.example.com': { identitytoken: 'token-secret' },
      }),
    );
    const credentials = RegistryCredentials.load(path, { required: true });
    const shown = JSON.stringify({ registryAuth: credentials });
    expect(JSON.parse(shown)).toEqual({
      registryAuth: { path, hosts: ['127.0.0.1:5000', 'reg.example.com', 'tok.example.com'] },
    });
    for (const secret of ['hunter2', 'plain-secret', 'token-secret', auth])
      expect(shown).not.toContain(secret);
  });
});
