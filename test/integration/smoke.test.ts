import { expect, it } from 'vitest';
import { DockerExecutor } from '../../src/index.js';
import { TEST_IMAGE, testDocker, testImageTarball, testLabels } from '../helpers/docker.js';
import { Sink } from '../helpers/streams.js';

it('loads the test image from its tarball and runs echo ok in a real container', async () => {
  const docker = testDocker();
  await docker
    .getImage(TEST_IMAGE)
    .remove({ force: true })
    .catch(() => undefined);
  const executor = new DockerExecutor({ docker, labels: testLabels('smoke') });
  const stdout = new Sink();
  try {
    const loaded = await executor.loadImage({
      image: TEST_IMAGE,
      tarballPath: testImageTarball(),
      pullPolicy: 'if-not-present',
    });
    await executor.create(
      {
        image: TEST_IMAGE,
        command: ['echo', 'ok'],
        env: {},
        bindMounts: {},
        vcpus: 0,
        ramBytes: 0,
        enableNetwork: false,
        stdout,
        stderr: new Sink(),
      },
      loaded,
    );
    await executor.start();
    expect(await executor.wait()).toBe(0);
    expect(stdout.text).toBe('ok\n');
  } finally {
    await executor.close();
  }
});
