import { afterAll, expect } from 'vitest';
import { DockerExecutor } from '../../src/executors/index.js';
import { TEST_IMAGE, testLabels } from '../helpers/docker.js';
import { openTestPodman } from '../helpers/podman.js';
import { executorSuite } from './executor-suite.js';

// The service this file starts on a socket of its own, as a worker does when none runs.
const { podman, reason } = await openTestPodman('podman-conformance-holders');
afterAll(async () => {
  expect(await podman?.close()).toEqual([]);
});

executorSuite(
  {
    name: 'podman',
    unavailable: async () => reason,
    make: (testName) => {
      if (!podman) throw new Error(`podman unavailable: ${reason}`);
      return new DockerExecutor({ runtime: podman.runtime, labels: testLabels(testName.slice(0, 200)) });
    },
    forgetImage: async () => {
      await podman?.runtime.docker
        .getImage(TEST_IMAGE)
        .remove({ force: true })
        .catch(() => undefined);
    },
  },
  reason,
);
