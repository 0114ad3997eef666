import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import { RuntimeUnavailableError } from '../../jobs/errors.js';
import { RUNTIME_PATH, type SingularityFlavour } from './args.js';

/** The program that runs containers, and what it says it is. */
export interface SingularityBinary {
  path: string;
  flavour: SingularityFlavour;
  /** Its own version line, e.g. "apptainer version 1.4.5". */
  version: string;
}

const INSTALL_HINT =
  'install Apptainer (https://apptainer.org/docs/admin/main/installation.html; on Debian 12 scripts/install-apptainer.sh) or set STEVEDORE_SINGULARITY_BIN to its path';

async function executable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  );
}

/**
 * Finds the runtime program: `explicit` (STEVEDORE_SINGULARITY_BIN) when given, else `apptainer`,
 * else `singularity` on `searchPath` (the worker's PATH). Asks it for its version, which also
 * proves that it runs. Rejects with a RuntimeUnavailableError saying what to do.
 */
export async function findSingularity(options: {
  explicit?: string;
  searchPath?: string;
}): Promise<SingularityBinary> {
  let path = options.explicit;
  if (path === undefined) {
    const dirs = (options.searchPath ?? RUNTIME_PATH).split(delimiter).filter((d) => d !== '');
    for (const name of ['apptainer', 'singularity']) {
      for (const dir of dirs) {
        if (path === undefined && (await executable(join(dir, name)))) path = join(dir, name);
      }
    }
  }
  if (path === undefined) {
    throw new RuntimeUnavailableError(
      'singularity',
      `neither apptainer nor singularity is on PATH: ${INSTALL_HINT}`,
    );
  }
  const answer = await execa(path, ['--version'], {
    env: { PATH: RUNTIME_PATH },
    extendEnv: false,
    reject: false,
    timeout: 30_000,
  });
  const version = String(answer.stdout).trim().split('\n')[0] ?? '';
  if (answer.failed || version === '') {
    const why =
      answer.code === 'ENOENT' ? 'no such program' : String(answer.stderr || answer.shortMessage).trim();
    throw new RuntimeUnavailableError('singularity', `${path} --version failed (${why}): ${INSTALL_HINT}`);
  }
  // "apptainer version 1.4.5"; SingularityCE says "singularity-ce version 3.11.4".
  const flavour: SingularityFlavour = version.startsWith('apptainer') ? 'apptainer' : 'singularity';
  return { path, flavour, version };
}
