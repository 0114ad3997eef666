import { DockerExecutor } from '../../src/executors/docker/docker-executor.js';
import { TEST_IMAGE, testDocker, testLabels } from '../helpers/docker.js';
import { executorSuite } from './executor-suite.js';

const docker = testDocker();

executorSuite(
  {
    name: 'docker',
    unavailable: async () => null,
    make: (testName) => new DockerExecutor({ docker, labels: testLabels(testName.slice(0, 200)) }),
    forgetImage: async () => {
      await docker
        .getImage(TEST_IMAGE)
        .remove({ force: true })
        .catch(() => undefined);
    },
  },
  null,
);
