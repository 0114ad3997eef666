import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDocker } from '../helpers/docker.js';
import { TestRegistry } from '../helpers/registry.js';
import { buildTestImage, pushImage, removeImage } from '../helpers/registry-images.js';
import { eventLines, eventsOf, writeDockerConfig } from '../helpers/registry-jobs.js';
import { testSingularityBin } from '../helpers/singularity.js';
import { useTestWorld } from '../helpers/stevedore.js';

// Jobs on an Apptainer worker whose images come from a real registry (docker://) or from the
// local Docker engine (docker-daemon:), converted to SIF once per digest.
const bin = await testSingularityBin();
const docker = testDocker();
const AUTH = { username: 'sif-user', password: 'sif-secret-8e2a' };
const LOCAL = 'stevedore-test/sif-images:a';
const DAEMON_ONLY = 'stevedore-test/sif-daemon:a';
const NAME = 'sif/app';
let open: TestRegistry;
let secured: TestRegistry;
let digest: string;
let daemonId: string;
let dir: string;

const sifs = async (cache: string) => (await readdir(cache)).filter((n) => n.endsWith('.sif')).sort();

describe.skipIf(bin === null)('Apptainer images from a registry and from the Docker engine', () => {
  if (bin === null) console.warn('[skip] singularity images: neither apptainer nor singularity is installed');
  const world = useTestWorld();

  beforeAll(async () => {
    [open, secured] = await Promise.all([TestRegistry.start(), TestRegistry.start({ auth: AUTH })]);
    await buildTestImage(docker, LOCAL, { variant: 'sif-a', randomBytes: 256 * 1024 });
    digest = await pushImage(docker, LOCAL, open.ref(NAME, '1'));
    await pushImage(docker, LOCAL, secured.ref(NAME, '1'), secured.authconfig());
    // Only the registries have these tags: a job must pull them, not convert the engine's copy.
    await removeImage(docker, open.ref(NAME, '1'));
    await removeImage(docker, secured.ref(NAME, '1'));
    daemonId = await buildTestImage(docker, DAEMON_ONLY, { variant: 'sif-daemon' });
    dir = await mkdtemp(join(tmpdir(), 'stevedore-sif-images-'));
  });

  afterAll(async () => {
    await removeImage(docker, DAEMON_ONLY);
    await Promise.all([open?.close(), secured?.close()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const worker = async (sifCache: string, registryAuth?: { path: string; required: boolean }) =>
    world.h.worker({
      runtime: 'singularity',
      singularity: { bin: bin as string, sifCache },
      ...(registryAuth ? { registryAuth } : {}),
    });

  it('pulls docker:// from a plain-HTTP loopback registry into a SIF keyed by the digest, and reuses it', async () => {
    const sifCache = join(dir, 'open');
    await worker(sifCache);
    const client = world.h.client();
    const image = open.ref(NAME, '1');
    const first = await client.submit({ image, command: ['cat', '/variant'] });
    const ran = await client.waitForResult(first.id, { timeoutMs: 120_000 });
    const key = digest.replace(/^sha256:/, '');
    expect(ran).toMatchObject({
      state: 'Complete',
      exitCode: 0,
      imageId: digest,
      imageDigest: `${open.host}/${NAME}@${digest}`,
      stdout: { tail: 'sif-a' },
    });
    expect(eventLines(await eventsOf(ran), 'image')[0]).toMatchObject({ source: 'registry' });
    expect(eventLines(await eventsOf(ran), 'pull')[0]).toMatchObject({ image, shared: false });
    expect(await sifs(sifCache)).toEqual([`${key}.sif`]);
    const manifests = (await open.fetched(NAME)).manifests.length;
    expect(manifests).toBeGreaterThan(0);

    // Again: the SIF under that reference is present; "always" asks the registry for the digest
    // (a HEAD) and finds that digest's SIF converted already.
    const again = await client.submit({ image, command: ['cat', '/variant'] });
    const always = await client.submit({ image, imagePullPolicy: 'always', command: ['cat', '/variant'] });
    const second = await client.waitForResult(again.id, { timeoutMs: 60_000 });
    const third = await client.waitForResult(always.id, { timeoutMs: 60_000 });
    expect(second).toMatchObject({ state: 'Complete', imageId: digest, stdout: { tail: 'sif-a' } });
    expect(eventLines(await eventsOf(second), 'image')[0]).toMatchObject({ source: 'present' });
    expect(third).toMatchObject({ state: 'Complete', imageId: digest, stdout: { tail: 'sif-a' } });
    expect(eventLines(await eventsOf(third), 'pull')[0]).toMatchObject({ shared: true });
    expect((await open.fetched(NAME)).manifests.length).toBe(manifests);
    expect(await sifs(sifCache)).toEqual([`${key}.sif`]);
  });

  it('pulls from an htpasswd registry with the credentials file, and fails as image with wrong ones', async () => {
    const right = await writeDockerConfig(join(dir, 'right.json'), { [secured.host]: AUTH });
    const first = await worker(join(dir, 'secured'), { path: right, required: true });
    const client = world.h.client();
    const { id } = await client.submit({ image: secured.ref(NAME, '1'), command: ['cat', '/variant'] });
    const result = await client.waitForResult(id, { timeoutMs: 120_000 });
    expect(result).toMatchObject({
      state: 'Complete',
      exitCode: 0,
      imageId: digest,
      stdout: { tail: 'sif-a' },
    });
    expect(JSON.stringify(await eventsOf(result))).not.toContain(AUTH.password);

    await first.close();
    const wrong = await writeDockerConfig(join(dir, 'wrong.json'), {
      [secured.host]: { username: AUTH.username, password: 'not-it' },
    });
    await worker(join(dir, 'secured-wrong'), { path: wrong, required: true });
    const refused = await client.submit(
      { image: secured.ref(NAME, '1'), command: ['true'] },
      { attempts: 3, backoff: { type: 'fixed', delay: 10 } },
    );
    const failed = await client.waitForResult(refused.id, { timeoutMs: 60_000 });
    expect(failed).toMatchObject({ state: 'Failed', reason: 'image', attempt: 1 });
    expect(failed.error?.phase).toBe('loading-image');
    expect(failed.error?.message).toMatch(/unauthorized/);
    expect(failed.error?.message).not.toContain('not-it');
  });

  it('converts an image only the local Docker engine has (docker-daemon:), keyed by its image id', async () => {
    const sifCache = join(dir, 'daemon');
    await worker(sifCache);
    const client = world.h.client();
    const first = await client.submit({ image: DAEMON_ONLY, command: ['cat', '/variant'] });
    const ran = await client.waitForResult(first.id, { timeoutMs: 120_000 });
    expect(ran).toMatchObject({
      state: 'Complete',
      exitCode: 0,
      imageId: daemonId,
      stdout: { tail: 'sif-daemon' },
    });
    expect(await sifs(sifCache)).toEqual([`${daemonId.replace(/^sha256:/, '')}.sif`]);
    const again = await client.submit({ image: DAEMON_ONLY, command: ['cat', '/variant'] });
    const second = await client.waitForResult(again.id, { timeoutMs: 60_000 });
    expect(second).toMatchObject({ state: 'Complete', imageId: daemonId });
    expect(eventLines(await eventsOf(second), 'image')[0]).toMatchObject({ source: 'present' });
    expect(await sifs(sifCache)).toHaveLength(1);
  });
});
