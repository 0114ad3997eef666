import { afterAll } from 'vitest';
import { DockerExecutor } from '../../src/executors/docker/docker-executor.js';
import { DockerRuntime } from '../../src/executors/docker/runtime.js';
import { TEST_IMAGE, testDocker, testLabels } from '../helpers/docker.js';
import { expectationsOf } from '../helpers/runtime-expectations.js';
import { executorSuite } from './executor-suite.js';

const docker = testDocker();
// One runtime for every executor of the suite, as a worker has (its holders are reused and closed here).
const runtime = new DockerRuntime({ client: docker, holders: { labels: testLabels('conformance-holders') } });
afterAll(() => runtime.close());

executorSuite(
  {
    name: 'docker',
    unavailable: async () => null,
    expected: () => expectationsOf(runtime),
    make: (testName) => new DockerExecutor({ runtime, labels: testLabels(testName.slice(0, 200)) }),
    runtimeVersion: /^docker .*\d+\.\d+/,
    limitsSeen: 'inside',
    forgetImage: async () => {
      await docker
        .getImage(TEST_IMAGE)
        .remove({ force: true })
        .catch(() => undefined);
    },
  },
  null,
);
