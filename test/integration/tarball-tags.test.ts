import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import { DockerExecutor, DockerRuntime } from '../../src/executors/index.js';
import { TEST_IMAGE, testDocker, testImageTarball } from '../helpers/docker.js';
import { openTestPodman } from '../helpers/podman.js';
import { imageTarball, tarOf } from '../helpers/tar.js';

/**
 * `docker load` applies every RepoTag of a tarball's manifest.json: a tarball a job names must
 * load the job's image under the job's tag and leave every other tag on the engine as it was.
 */
const VICTIM = 'stevedore-test/victim:1';
const WANTED = 'stevedore-test/retag-wanted:1';

const dir = await mkdtemp(join(tmpdir(), 'stevedore-tarball-tags-'));
const { podman, reason } = await openTestPodman('tarball-tags-holders');
if (reason) console.warn(`[skip] tarball tags on podman: ${reason}`);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  if (podman) expect(await podman.close()).toEqual([]);
});

const engines: [string, () => { runtime: DockerRuntime; docker: Dockerode } | null][] = [
  [
    'docker',
    () => ({ runtime: new DockerRuntime({ client: testDocker(), netns: 'fresh' }), docker: testDocker() }),
  ],
  ['podman', () => (podman ? { runtime: podman.runtime, docker: podman.runtime.docker } : null)],
];

describe.each(engines)('a tarball naming other tags too, on %s', (name, open) => {
  const engine = open();
  afterAll(async () => {
    if (name === 'docker') await engine?.runtime.close();
  });
  it.skipIf(engine === null)('loads the wanted image under its tag; the victim keeps its image', async () => {
    const { runtime, docker } = engine as NonNullable<typeof engine>;
    // The victim: an image already on the engine (the test image, under another tag).
    await new DockerExecutor({ runtime }).loadImage({
      image: TEST_IMAGE,
      tarballPath: testImageTarball(),
      pullPolicy: 'if-not-present',
    });
    await docker.getImage(TEST_IMAGE).tag({ repo: 'stevedore-test/victim', tag: '1' });
    const victimId = (await docker.getImage(VICTIM).inspect()).Id;
    const made = imageTarball({
      repoTags: [WANTED, VICTIM, 'busybox:latest'],
      label: `tarball-tags-${name}-${Date.now()}`,
      repositories: true,
    });
    const path = join(dir, `${name}.tar`);
    await writeFile(path, made.tar);
    try {
      const loaded = await new DockerExecutor({ runtime }).loadImage({
        image: WANTED,
        tarballPath: path,
        pullPolicy: 'if-not-present',
      });
      expect(loaded.imageId).toBe(made.imageId);
      expect((await docker.getImage(WANTED).inspect()).Id).toBe(made.imageId);
      expect((await docker.getImage(VICTIM).inspect()).Id).toBe(victimId);
      const busybox = await docker
        .getImage('busybox:latest')
        .inspect()
        .catch(() => null);
      expect(busybox?.Id).not.toBe(made.imageId);
    } finally {
      for (const image of [WANTED, VICTIM, 'busybox:latest']) {
        // busybox:latest only when a load pointed it at the made image (the code before the fix).
        const id = await docker
          .getImage(image)
          .inspect()
          .then(
            (i) => i.Id,
            () => null,
          );
        if (image === 'busybox:latest' && id !== made.imageId) continue;
        await docker
          .getImage(image)
          .remove({ noprune: false })
          .catch(() => undefined);
      }
    }
  });
  it.skipIf(engine === null)(
    "refuses a job's image in the namespace holders' repository, from a tarball too",
    async () => {
      const { runtime } = engine as NonNullable<typeof engine>;
      for (const image of ['stevedore/netns-holder:0123456789ab', 'localhost/stevedore/netns-holder:x']) {
        const made = imageTarball({ repoTags: [image], label: `holder-${name}` });
        const path = join(dir, `holder-${name}.tar`);
        await writeFile(path, made.tar);
        await expect(
          new DockerExecutor({ runtime }).loadImage({
            image,
            tarballPath: path,
            pullPolicy: 'if-not-present',
          }),
        ).rejects.toMatchObject({
          name: 'ImageUnavailableError',
          message: expect.stringMatching(/namespace holders/),
        });
      }
    },
  );
  it.skipIf(engine === null)(
    'a tarball engines would read otherwise is not loaded, and says why',
    async () => {
      const { runtime } = engine as NonNullable<typeof engine>;
      // Its own name: the runtime remembers WANTED as present from the first test.
      const cutImage = 'stevedore-test/cut:1';
      const made = imageTarball({ repoTags: [cutImage], label: `cut-${name}` });
      // A symbolic link "a" to ".", then "a/manifest.json": Docker's unpacking would write manifest.json through it.
      const cut = Buffer.concat([
        tarOf([
          { name: 'a', type: '2', linkname: '.' },
          { name: 'a/manifest.json', data: JSON.stringify([{ RepoTags: [VICTIM] }]) },
        ]).subarray(0, 1536),
        made.tar,
      ]);
      const path = join(dir, `cut-${name}.tar`);
      await writeFile(path, cut);
      await expect(
        new DockerExecutor({ runtime }).loadImage({
          image: cutImage,
          tarballPath: path,
          pullPolicy: 'if-not-present',
        }),
      ).rejects.toMatchObject({
        name: 'ImageUnavailableError',
        message: expect.stringMatching(
          /was not loaded: entry "a\/manifest.json" would be written through a symbolic link/,
        ),
      });
    },
  );
});
