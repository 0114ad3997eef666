import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { TrustedKeys } from '../../src/worker/trusted-keys.js';

const silent = pino({ level: 'silent' });
const publicPem = () =>
  generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }) as string;

describe('trusted keys directory', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stevedore-trusted-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads every <id>.pub, ignoring other files', async () => {
    await writeFile(join(dir, 'alice.pub'), publicPem());
    await writeFile(join(dir, 'bob.pub'), publicPem());
    await writeFile(join(dir, 'README'), 'not a key');
    const trusted = await TrustedKeys.load(dir, silent);
    expect([...(await trusted.current()).keys()].sort()).toEqual(['alice', 'bob']);
  });

  it('stops the worker at start on a bad key file, naming it', async () => {
    await writeFile(join(dir, 'alice.pub'), 'garbage');
    await expect(TrustedKeys.load(dir, silent)).rejects.toThrow(ConfigError);
    await expect(TrustedKeys.load(dir, silent)).rejects.toThrow(
      `bad key file ${join(dir, 'alice.pub')}: not a public key in PEM`,
    );
    await writeFile(
      join(dir, 'alice.pub'),
      generateKeyPairSync('x25519').publicKey.export({ type: 'spki', format: 'pem' }),
    );
    await expect(TrustedKeys.load(dir, silent)).rejects.toThrow('is a x25519 key, not Ed25519');
    await unlink(join(dir, 'alice.pub'));
    await writeFile(join(dir, ' bad id.pub'), publicPem());
    await expect(TrustedKeys.load(dir, silent)).rejects.toThrow('its base name " bad id" is the key id');
    await expect(TrustedKeys.load(join(dir, 'missing'), silent)).rejects.toThrow(
      /STEVEDORE_TRUSTED_KEYS=".*missing" cannot be read/,
    );
  });

  it('sees a key added and an old one removed at the next look (rotation without restart)', async () => {
    await writeFile(join(dir, 'old.pub'), publicPem());
    const trusted = await TrustedKeys.load(dir, silent);
    await writeFile(join(dir, 'new.pub'), publicPem());
    expect([...(await trusted.current()).keys()].sort()).toEqual(['new', 'old']);
    await unlink(join(dir, 'old.pub'));
    expect([...(await trusted.current()).keys()]).toEqual(['new']);
  });

  it('keeps the old key of a file rewritten badly (caught half-written), and trusts nothing when the directory is gone', async () => {
    const first = publicPem();
    await writeFile(join(dir, 'alice.pub'), first);
    const trusted = await TrustedKeys.load(dir, silent);
    const before = (await trusted.current()).get('alice');
    await writeFile(join(dir, 'alice.pub'), first.slice(0, 20));
    expect((await trusted.current()).get('alice')).toBe(before);
    await rm(dir, { recursive: true });
    expect((await trusted.current()).size).toBe(0);
  });
});
