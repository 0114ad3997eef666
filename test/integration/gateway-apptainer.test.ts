import { join } from 'node:path';
import { testSingularityBin } from '../helpers/singularity.js';
import { gatewaySuite } from './gateway-suite.js';

const bin = await testSingularityBin();

gatewaySuite({
  kind: 'singularity',
  unavailable: bin === null ? 'neither apptainer nor singularity is installed (scripts/setup.sh test)' : null,
  env: (dir) => ({ STEVEDORE_SINGULARITY_BIN: bin ?? '', STEVEDORE_SIF_CACHE: join(dir, 'sif') }),
  // Known difference until Apptainer's exec runs inside the container's own terminal: nsenter
  // from the host gives the command no pty yet (src/executors/singularity/exec-stream.ts).
  noTerminal: 'Apptainer exec (nsenter) has no terminal yet',
  // nsenter runs on the host as root: a variable for the command would act on it first.
  noEnv: 'Apptainer exec (nsenter) cannot set variables inside the container yet',
});
