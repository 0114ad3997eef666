import type Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDocker, testLabels } from '../helpers/docker.js';
import { TestRegistry } from '../helpers/registry.js';
import { buildTestImage, pushImage, readProgress, removeImage } from '../helpers/registry-images.js';
import { Sink } from '../helpers/streams.js';

// The rig the registry tests stand on: a real registry, real pushes and pulls by the engine.
const docker = testDocker();
const AUTH = { username: 'rig-user', password: 'rig-secret-7f3a' };
const LOCAL = 'stevedore-test/rig:variant-a';
let open: TestRegistry;
let secured: TestRegistry;
let imageId: string;

beforeAll(async () => {
  [open, secured] = await Promise.all([TestRegistry.start(), TestRegistry.start({ auth: AUTH })]);
  imageId = await buildTestImage(docker, LOCAL, { variant: 'variant-a', randomBytes: 256 * 1024, layers: 2 });
});

afterAll(async () => {
  await removeImage(docker, imageId);
  await Promise.all([open?.close(), secured?.close()]);
});

async function pull(ref: string, authconfig: Dockerode.AuthConfigObject = {}): Promise<void> {
  await readProgress(await docker.createImage(authconfig, { fromImage: ref }), `pulling ${ref}`);
}

async function catVariant(ref: string): Promise<string> {
  const container = await docker.createContainer({
    Image: ref,
    Cmd: ['cat', '/variant'],
    Labels: testLabels('registry-rig'),
    HostConfig: { NetworkMode: 'none' },
  });
  try {
    const stdout = new Sink();
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    container.modem.demuxStream(stream, stdout, new Sink());
    const ended = new Promise((resolve) => stream.on('end', resolve));
    const exited = container.wait({ condition: 'next-exit' });
    await container.start();
    expect((await exited).StatusCode).toBe(0);
    await ended;
    return stdout.text;
  } finally {
    await container.remove({ force: true });
  }
}

describe('registry test rig', () => {
  it('pushes to an open and an authenticated registry, and pulls back what it pushed', async () => {
    const openRef = open.ref('rig/app', 'v1');
    const securedRef = secured.ref('rig/app', 'v1');
    const digest = await pushImage(docker, LOCAL, openRef);
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await pushImage(docker, LOCAL, securedRef, secured.authconfig())).toBe(digest);

    // Away with every tag, so the pulls below must fetch the layers.
    await removeImage(docker, imageId);
    await pull(openRef);
    await pull(securedRef, secured.authconfig());
    expect((await docker.getImage(openRef).inspect()).Id).toBe(imageId);
    expect((await docker.getImage(securedRef).inspect()).RepoDigests).toContain(
      `${secured.host}/rig/app@${digest}`,
    );
    expect(await catVariant(openRef)).toBe('variant-a');
    expect(await catVariant(securedRef)).toBe('variant-a');

    // One manifest GET (by digest) and one GET per blob: the config, the variant and two data
    // layers; the base layer is still in the engine under the test image, so it is not fetched.
    const { manifests, blobs } = await open.fetched('rig/app');
    expect(manifests).toEqual([digest]);
    expect(blobs).toHaveLength(4);
    expect(new Set(blobs).size).toBe(4);
  });

  it('refuses a push and a pull with the wrong password, with the registry\'s "unauthorized"', async () => {
    const ref = secured.ref('rig/app', 'v1');
    const wrong = secured.authconfig({ username: AUTH.username, password: 'not-the-password' });
    const pulled = open.ref('rig/app', 'v1'); // the first test pulled it back
    await expect(pushImage(docker, pulled, secured.ref('rig/other', 'v1'), wrong)).rejects.toThrow(
      /unauthorized/,
    );
    await removeImage(docker, ref);
    await expect(pull(ref, wrong)).rejects.toThrow(/unauthorized/);
    const refused = (await secured.requests()).filter((r) => r.status === 401);
    expect(refused.length).toBeGreaterThan(0);
  });
});
