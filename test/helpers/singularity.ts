import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

/** Where scripts/install-apptainer.sh puts Apptainer (setup.sh runs it for the tests). */
export const INSTALLED_APPTAINER = '/opt/apptainer/bin/apptainer';

/** The runtime program the tests use: STEVEDORE_SINGULARITY_BIN, apptainer or singularity on PATH, else the installed one; null when none. */
export async function testSingularityBin(): Promise<string | null> {
  const candidates = [
    process.env.STEVEDORE_SINGULARITY_BIN,
    ...['apptainer', 'singularity'].flatMap((name) =>
      (process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, name)),
    ),
    INSTALLED_APPTAINER,
  ].filter((c): c is string => Boolean(c));
  for (const path of candidates) {
    if (
      await access(path, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return path;
  }
  return null;
}
