import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imagePresent } from '../../src/executors/docker/image.js';
import type { JobSpecInput } from '../../src/jobs/spec.js';
import { leftoverContainers, testDocker } from '../helpers/docker.js';
import { TestRegistry } from '../helpers/registry.js';
import { buildTestImage, pushImage, removeImage } from '../helpers/registry-images.js';
import { eventLines, eventsOf } from '../helpers/registry-jobs.js';
import { until, useTestWorld } from '../helpers/stevedore.js';

// What each pull policy runs after a tag moved in the registry: the tag pushed again with another image.
const docker = testDocker();
const NAME = 'policy/app';
let registry: TestRegistry;
const images: Record<'a' | 'b', string> = { a: '', b: '' };

beforeAll(async () => {
  registry = await TestRegistry.start();
  images.a = await buildTestImage(docker, 'stevedore-test/registry-policy:a', { variant: 'policy-a' });
  images.b = await buildTestImage(docker, 'stevedore-test/registry-policy:b', { variant: 'policy-b' });
});

/** Every image id the file built or pulled: rebuilt variants get new ids, and each is removed at the end. */
const made = new Set<string>();

afterAll(async () => {
  for (const id of [...made, images.a, images.b]) await removeImage(docker, id);
  await registry?.close();
});

const world = useTestWorld();

async function run(spec: Omit<JobSpecInput, 'command'>) {
  const client = world.h.client();
  const { id } = await client.submit({ ...spec, command: ['cat', '/variant'] });
  const result = await client.waitForResult(id, { timeoutMs: 30_000 });
  expect(result).toMatchObject({ state: 'Complete', exitCode: 0 });
  if (result.imageId) made.add(result.imageId);
  return {
    result,
    variant: result.stdout.tail,
    pulled: eventLines(await eventsOf(result), 'pull').length > 0,
  };
}

describe('pull policies when a tag moves', () => {
  it('always runs the new image, if-not-present keeps the old one, a digest runs exactly its image', async () => {
    await world.h.worker();
    const image = registry.ref(NAME, '1');
    const first = await pushImage(docker, 'stevedore-test/registry-policy:a', image);
    await removeImage(docker, images.a); // the host has neither image: the first job pulls

    const pulled = await run({ image });
    expect(pulled).toMatchObject({ variant: 'policy-a', pulled: true });
    expect(pulled.result).toMatchObject({
      imageId: images.a,
      imageDigest: `${registry.host}/${NAME}@${first}`,
    });

    // Rebuild b's local tag (removed with nothing), push it under the same tag: the tag moved.
    images.b = await buildTestImage(docker, 'stevedore-test/registry-policy:b', { variant: 'policy-b' });
    const second = await pushImage(docker, 'stevedore-test/registry-policy:b', image);
    expect(second).not.toBe(first);
    // Back to what the host had: a as the tag, b not at all.
    await removeImage(docker, images.b);
    await docker.getImage(images.a).tag({ repo: `${registry.host}/${NAME}`, tag: '1' });

    const kept = await run({ image, imagePullPolicy: 'if-not-present' });
    expect(kept).toMatchObject({ variant: 'policy-a', pulled: false });
    expect(kept.result).toMatchObject({
      imageId: images.a,
      imageDigest: `${registry.host}/${NAME}@${first}`,
    });

    const fresh = await run({ image, imagePullPolicy: 'always' });
    expect(fresh).toMatchObject({ variant: 'policy-b', pulled: true });
    expect(fresh.result).toMatchObject({
      imageId: images.b,
      imageDigest: `${registry.host}/${NAME}@${second}`,
    });

    // a is still on the host (untagged): its digest runs it without a pull, whatever the tag says now.
    const byDigest = `${registry.host}/${NAME}@${first}`;
    const exact = await run({ image: byDigest, imagePullPolicy: 'always' });
    expect(exact).toMatchObject({ variant: 'policy-a', pulled: false });
    expect(exact.result).toMatchObject({ imageId: images.a, imageDigest: byDigest });

    // Gone from the host, the digest is pulled again: still exactly that image.
    // The last job's container is removed just after its result is stored; an image in use would stay.
    await until(
      async () => (await leftoverContainers(docker, `stevedore.queue=${world.h.queue}`)).length === 0,
    );
    await removeImage(docker, images.a);
    expect(await imagePresent(docker, images.a)).toBe(false);
    const again = await run({ image: byDigest });
    expect(again.variant).toBe('policy-a');
    expect(again.result).toMatchObject({ imageId: images.a, imageDigest: byDigest });
  });

  it('an untagged reference means latest and is pulled every time, as in Kubernetes', async () => {
    await world.h.worker();
    const name = `${registry.host}/${NAME}`;
    images.a = await buildTestImage(docker, 'stevedore-test/registry-policy:a', { variant: 'policy-a' });
    await pushImage(docker, 'stevedore-test/registry-policy:a', `${name}:latest`);
    const first = await run({ image: name });
    expect(first).toMatchObject({ variant: 'policy-a' });
    expect(eventLines(await eventsOf(first.result), 'image')[0]).toMatchObject({ pullPolicy: 'always' });

    images.b = await buildTestImage(docker, 'stevedore-test/registry-policy:b', { variant: 'policy-b' });
    await pushImage(docker, 'stevedore-test/registry-policy:b', `${name}:latest`);
    await docker.getImage(images.a).tag({ repo: name, tag: 'latest' }); // the host's latest is a again
    const second = await run({ image: name });
    expect(second).toMatchObject({ variant: 'policy-b', pulled: true });
    expect(second.result.imageId).toBe(images.b);
  });
});
