import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { testDocker } from '../helpers/docker.js';
import { TestRegistry } from '../helpers/registry.js';
import { buildTestImage, pushImage, readProgress, removeImage } from '../helpers/registry-images.js';
import { eventLines, eventsOf, writeDockerConfig } from '../helpers/registry-jobs.js';
import { useTestWorld } from '../helpers/stevedore.js';

// Jobs whose images come from real registries (Debian's docker-registry), pulled by the engine.
const docker = testDocker();
const AUTH = { username: 'pull-user', password: 'pull-secret-5d1c' };
const LOCAL = 'stevedore-test/registry-pull:a';
const NAME = 'pull/app';
let open: TestRegistry;
let secured: TestRegistry;
let imageId: string;
let digest: string;
let dir: string;

beforeAll(async () => {
  [open, secured] = await Promise.all([TestRegistry.start(), TestRegistry.start({ auth: AUTH })]);
  imageId = await buildTestImage(docker, LOCAL, { variant: 'pull-a', randomBytes: 512 * 1024, layers: 2 });
  digest = await pushImage(docker, LOCAL, open.ref(NAME, '1'));
  await pushImage(docker, LOCAL, secured.ref(NAME, '1'), secured.authconfig());
  dir = await mkdtemp(join(tmpdir(), 'stevedore-registry-pull-'));
});

afterAll(async () => {
  await removeImage(docker, imageId);
  await Promise.all([open?.close(), secured?.close()]);
  await rm(dir, { recursive: true, force: true });
});

// Every case starts from an engine without the image (every tag of it), so a job must pull.
beforeEach(async () => {
  await removeImage(docker, imageId);
});

const world = useTestWorld();
const ONE_TRY = { attempts: 3, backoff: { type: 'fixed' as const, delay: 10 } };

describe('a job whose image is in a registry', () => {
  it('pulls it from an open registry and says which image ran', async () => {
    await world.h.worker();
    const client = world.h.client();
    const image = open.ref(NAME, '1');
    const { id } = await client.submit({ image, command: ['cat', '/variant'] });
    const result = await client.waitForResult(id, { timeoutMs: 30_000 });
    expect(result).toMatchObject({ state: 'Complete', exitCode: 0, image, imageId });
    expect(result.stdout.tail).toBe('pull-a');
    expect(result.imageDigest).toBe(`${open.host}/${NAME}@${digest}`);
    expect((await open.fetched(NAME)).manifests).toContain(digest);
    const events = await eventsOf(result);
    const [pull] = eventLines(events, 'pull');
    expect(pull).toMatchObject({ image, shared: false });
    expect(pull?.bytes).toBeGreaterThan(512 * 1024);
    expect(pull?.durationMs).toBeGreaterThanOrEqual(0);
    expect(eventLines(events, 'image')[0]).toMatchObject({
      source: 'registry',
      imageId,
      pullPolicy: 'if-not-present',
    });
  });

  it('pulls from an authenticated registry with the worker-held credentials', async () => {
    const auth = await writeDockerConfig(join(dir, 'right.json'), { [secured.host]: AUTH });
    await world.h.worker({ registryAuth: { path: auth, required: true } });
    const client = world.h.client();
    const { id } = await client.submit({ image: secured.ref(NAME, '1'), command: ['cat', '/variant'] });
    const result = await client.waitForResult(id, { timeoutMs: 30_000 });
    expect(result).toMatchObject({ state: 'Complete', exitCode: 0, imageId });
    expect(result.stdout.tail).toBe('pull-a');
  });

  it('with wrong credentials fails at once: reason image, the registry’s "unauthorized", one attempt', async () => {
    const wrong = { username: AUTH.username, password: 'not-the-password' };
    const auth = await writeDockerConfig(join(dir, 'wrong.json'), { [secured.host]: wrong });
    await world.h.worker({ registryAuth: { path: auth, required: true } });
    const client = world.h.client();
    const { id } = await client.submit({ image: secured.ref(NAME, '1'), command: ['true'] }, ONE_TRY);
    const result = await client.waitForResult(id, { timeoutMs: 30_000 });
    expect(result).toMatchObject({
      state: 'Failed',
      reason: 'image',
      attempt: 1,
      containerId: null,
      imageId: null,
    });
    expect(result.error?.phase).toBe('loading-image');
    expect(result.error?.message).toMatch(/unauthorized/);
    expect(result.attempts).toHaveLength(1);
    expect(await attemptsMade(id)).toBe(1);
  });

  it('without credentials for an authenticated registry fails with reason image', async () => {
    await world.h.worker({ registryAuth: { path: join(dir, 'none-here.json'), required: false } });
    const client = world.h.client();
    const { id } = await client.submit({ image: secured.ref(NAME, '1'), command: ['true'] }, ONE_TRY);
    const result = await client.waitForResult(id, { timeoutMs: 30_000 });
    expect(result).toMatchObject({ state: 'Failed', reason: 'image', attempt: 1 });
    expect(result.error?.message).toMatch(/no basic auth credentials/);
  });

  it('fails with reason image for a tag the registry does not have, and for a malformed reference', async () => {
    await world.h.worker();
    const client = world.h.client();
    const missing = await client.submit({ image: open.ref(NAME, 'nope'), command: ['true'] }, ONE_TRY);
    const malformed = await client.submit({ image: `${open.host}/Pull/App:1`, command: ['true'] }, ONE_TRY);
    const notFound = await client.waitForResult(missing.id, { timeoutMs: 30_000 });
    expect(notFound).toMatchObject({ state: 'Failed', reason: 'image', attempt: 1 });
    expect(notFound.error?.message).toMatch(/manifest unknown/);
    const bad = await client.waitForResult(malformed.id, { timeoutMs: 30_000 });
    expect(bad).toMatchObject({ state: 'Failed', reason: 'image', attempt: 1 });
    expect(bad.error?.message).toMatch(/malformed.*"Pull" is not a repository name part/);
    expect(await attemptsMade(missing.id)).toBe(1);
    expect(await attemptsMade(malformed.id)).toBe(1);
  });

  it('with imagePullPolicy never: fails when absent, saying how to get it there; runs it when present', async () => {
    await world.h.worker();
    const client = world.h.client();
    const image = open.ref(NAME, '1');
    const absent = await client.submit({ image, imagePullPolicy: 'never', command: ['true'] }, ONE_TRY);
    const failed = await client.waitForResult(absent.id, { timeoutMs: 30_000 });
    expect(failed).toMatchObject({ state: 'Failed', reason: 'image', attempt: 1 });
    expect(failed.error?.message).toMatch(/not present on this host.*"never".*docker pull/);

    // As the message says: pulled on the host by hand, then the job runs it without a pull of its own.
    await readProgress(await docker.createImage({}, { fromImage: image }), `pulling ${image}`);
    const before = (await open.fetched(NAME)).manifests.length;
    const present = await client.submit({ image, imagePullPolicy: 'never', command: ['cat', '/variant'] });
    const ran = await client.waitForResult(present.id, { timeoutMs: 30_000 });
    expect(ran).toMatchObject({ state: 'Complete', exitCode: 0, imageId });
    expect(ran.stdout.tail).toBe('pull-a');
    expect(eventLines(await eventsOf(ran), 'pull')).toEqual([]);
    expect((await open.fetched(NAME)).manifests.length).toBe(before);
  });

  it('refuses to start with a credentials file it cannot use, naming the file and the entry', async () => {
    const bad = join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ auths: { [secured.host]: { auth: 'bm9jb2xvbg==' } } }));
    await expect(world.h.worker({ registryAuth: { path: bad, required: true } })).rejects.toThrow(
      new RegExp(`${bad}.*${secured.host.replace('.', '\\.')}.*user:password`),
    );
    await expect(
      world.h.worker({ registryAuth: { path: join(dir, 'missing.json'), required: true } }),
    ).rejects.toThrow(/missing\.json cannot be read.*STEVEDORE_REGISTRY_AUTH/);
  });
});

async function attemptsMade(id: string): Promise<number> {
  const queue = new Queue(world.h.queue, { connection: { host: '127.0.0.1', port: world.redis.port } });
  try {
    return (await queue.getJob(id))?.attemptsMade ?? -1;
  } finally {
    await queue.close();
  }
}
