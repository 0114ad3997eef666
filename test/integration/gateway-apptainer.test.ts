import { join } from 'node:path';
import { testSingularityBin } from '../helpers/singularity.js';
import { gatewaySuite } from './gateway-suite.js';

const bin = await testSingularityBin();

gatewaySuite({
  kind: 'singularity',
  unavailable: bin === null ? 'neither apptainer nor singularity is installed (scripts/setup.sh test)' : null,
  env: (dir) => ({ STEVEDORE_SINGULARITY_BIN: bin ?? '', STEVEDORE_SIF_CACHE: join(dir, 'sif') }),
  noTerminal: null,
  noEnv: null,
});
