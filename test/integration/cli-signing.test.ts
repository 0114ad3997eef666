import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stevedore } from '../helpers/cli.js';
import { TEST_IMAGE, testImageTarball } from '../helpers/docker.js';
import { useTestWorld } from '../helpers/stevedore.js';

describe('stevedore keygen and signed submit', () => {
  const world = useTestWorld();
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stevedore-cli-keys-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keygen writes NAME.key (PKCS#8, 0600) and NAME.pub (SPKI), and refuses to overwrite either', async () => {
    const made = await stevedore(['keygen', '--id', 'ci', '--out', join(dir, 'keys')]);
    expect(made.exitCode).toBe(0);
    const keyFile = join(dir, 'keys', 'ci.key');
    const pubFile = join(dir, 'keys', 'ci.pub');
    expect(made.stdout).toBe(`${keyFile}\n${pubFile}`);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    const keyPem = await readFile(keyFile, 'utf8');
    expect(keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(createPrivateKey(keyPem).asymmetricKeyType).toBe('ed25519');
    const pubPem = await readFile(pubFile, 'utf8');
    expect(pubPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    expect(createPublicKey(pubPem).asymmetricKeyType).toBe('ed25519');

    const again = await stevedore(['keygen', '--id', 'ci', '--out', join(dir, 'keys')]);
    expect(again.exitCode).toBe(2);
    expect(again.stderr).toBe(
      `stevedore: ${keyFile} exists; keygen never overwrites a key: choose another --id or --out`,
    );
    expect(await readFile(keyFile, 'utf8')).toBe(keyPem);
    await rm(keyFile);
    const pubLeft = await stevedore(['keygen', '--id', 'ci', '--out', join(dir, 'keys')]);
    expect(pubLeft.exitCode).toBe(2);
    expect(pubLeft.stderr).toContain(`${pubFile} exists`);
    expect(await readFile(pubFile, 'utf8')).toBe(pubPem);
    const badId = await stevedore(['keygen', '--id', '../x']);
    expect(badId.exitCode).toBe(2);
    expect(badId.stderr).toContain('--id "../x" must be');
  });

  it('submit signs with --signing-key or STEVEDORE_SIGNING_KEY; a worker with trusted keys runs those and refuses an unsigned one', async () => {
    const keys = join(dir, 'worker-keys');
    expect((await stevedore(['keygen', '--id', 'producer', '--out', keys])).exitCode).toBe(0);
    const { h } = world;
    await h.worker({ trustedKeysDir: keys });
    const env = { REDIS_URL: world.redis.url, STEVEDORE_QUEUE: h.queue, STEVEDORE_STATE_DIR: dir };
    const job = [
      '--image',
      TEST_IMAGE,
      '--image-tarball',
      testImageTarball(),
      '--wait',
      '--timeout',
      '30000',
    ];
    const byFlag = await stevedore(
      ['submit', ...job, '--signing-key', join(keys, 'producer.key'), '--', 'echo', 'flag'],
      {
        env,
      },
    );
    expect(byFlag.exitCode).toBe(0);
    expect(JSON.parse(String(byFlag.stdout))).toMatchObject({
      state: 'Complete',
      stdout: { tail: 'flag\n' },
    });
    const byEnv = await stevedore(['submit', ...job, '--', 'echo', 'env'], {
      env: { ...env, STEVEDORE_SIGNING_KEY: join(keys, 'producer.key') },
    });
    expect(byEnv.exitCode).toBe(0);
    const stale = await stevedore(
      [
        'submit',
        ...job,
        '--signing-key',
        join(keys, 'producer.key'),
        '--not-after',
        '2000-01-01T00:00:00Z',
        '--',
        'true',
      ],
      { env },
    );
    expect(stale.exitCode).toBe(2);
    expect(stale.stderr).toContain('must be a time in the future');
    const unsigned = await stevedore(['submit', ...job, '--', 'echo', 'no'], { env });
    expect(unsigned.exitCode).toBe(1);
    expect(JSON.parse(String(unsigned.stdout))).toMatchObject({ state: 'Failed', reason: 'invalid' });
  });
});
