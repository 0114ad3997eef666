import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { SingularityRuntime } from '../../src/executors/singularity/runtime.js';
import { SingularityExecutor } from '../../src/executors/singularity/singularity-executor.js';
import { testLabels } from '../helpers/docker.js';
import { RUNTIME_EXPECTATIONS } from '../helpers/runtime-expectations.js';
import { testSingularityBin } from '../helpers/singularity.js';
import { executorSuite } from './executor-suite.js';

const bin = await testSingularityBin();
const dir = await mkdtemp(join(tmpdir(), 'stevedore-sif-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

const opened =
  bin === null
    ? 'neither apptainer nor singularity is installed (Debian 12 has no package: run scripts/setup.sh test)'
    : await SingularityRuntime.open({ bin, sifCache: join(dir, 'sif'), stateDir: join(dir, 'state') }).catch(
        (error: Error) => error.message,
      );
const runtime = typeof opened === 'string' ? null : opened;

executorSuite(
  {
    name: 'singularity',
    unavailable: async () => (typeof opened === 'string' ? opened : null),
    make: (testName) => {
      if (!runtime) throw new Error('no singularity runtime');
      return new SingularityExecutor({ runtime, labels: testLabels(testName.slice(0, 200)) });
    },
    forgetImage: async () => {
      await rm(join(dir, 'sif'), { recursive: true, force: true });
    },
    expected: () => RUNTIME_EXPECTATIONS.singularity,
    runtimeVersion: /^(apptainer|singularity(-ce)?) version \d+\.\d+/,
    // What Apptainer's action script sets after every env script has run, or makes read-only
    // (src/executors/singularity/env-script.ts); everything else it adds is taken away.
    runtimeEnv:
      /^(APPTAINER_CONTAINER|APPTAINER_NAME|APPTAINER_ENVIRONMENT|SINGULARITY_ENVIRONMENT|PS1|PROMPT_COMMAND)$/,
    limitsSeen: 'host-cgroup',
  },
  typeof opened === 'string' ? opened : null,
);
