import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createExecutor } from '../../src/executors/index.js';
import { executorSuite } from './executor-suite.js';

const run = promisify(execFile);

async function singularityMissing(): Promise<string | null> {
  for (const bin of ['apptainer', 'singularity']) {
    try {
      await run(bin, ['--version']);
      return null;
    } catch {
      // try the next name
    }
  }
  return 'neither apptainer nor singularity is installed (Debian 12 has no package for them)';
}

const reason = await singularityMissing();

executorSuite(
  {
    name: 'singularity',
    unavailable: singularityMissing,
    make: () => {
      throw new Error('singularity executor not implemented yet');
    },
    forgetImage: async () => undefined,
  },
  reason ??
    (await createExecutor('singularity').then(
      () => null,
      (error: Error) => error.message,
    )),
);
