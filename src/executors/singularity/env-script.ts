/**
 * Keeping a job's environment as close to exactly the spec's as Apptainer allows.
 *
 * `--cleanenv` keeps the worker's variables out, but Apptainer's action script (the shell it runs
 * inside the container before the command, internal/pkg/util/fs/files/action_script.sh in
 * Apptainer 1.4.5) adds its own. It sources /.singularity.d/env/*.sh in name order (the spec's
 * `--env` values are put in right after 99-base.sh), then puts back each of its own starting
 * variables that a script did not set, and unsets those a script set to the empty string. An
 * env script of ours, bound in last (99-zz-…), therefore sets Apptainer's starting variables to
 * "" and unsets LD_LIBRARY_PATH (set by the image's 99-base.sh), each unless the spec sets it.
 *
 * What no env script can take away (checked on Apptainer 1.4.5), so every Apptainer job has it:
 * APPTAINER_CONTAINER and APPTAINER_NAME (the script makes them read-only), and
 * APPTAINER_ENVIRONMENT, SINGULARITY_ENVIRONMENT, PS1 and PROMPT_COMMAND (exported after the
 * env scripts have run). The only way past those would be a wrapper program in the image that
 * execs the command with a clean environment, and an image need not have one.
 */

/** Where the script is bound: sorted after the image's own scripts and Apptainer's 99-base.sh / 99-runtimevars.sh. */
export const ENV_SCRIPT_PATH = '/.singularity.d/env/99-zz-stevedore.sh';

/** Apptainer's starting variables that an env script can clear (by setting them to ""). */
const CLEARABLE = [
  'APPTAINER_APPNAME',
  'APPTAINER_BIND',
  'APPTAINER_COMMAND',
  'LANG',
  'SINGULARITY_BIND',
  'SINGULARITY_CONTAINER',
  'SINGULARITY_NAME',
];

/**
 * The env script for a job whose spec sets `specNames`. `keepLibraryPath`: GPU jobs need
 * Apptainer's LD_LIBRARY_PATH, which points at the driver libraries `--nv`/`--rocm` bind in.
 */
export function envScript(specNames: readonly string[], keepLibraryPath: boolean): string {
  const own = new Set(specNames);
  const lines = ['# Written by Stevedore: takes away what Apptainer adds to the job environment.'];
  for (const name of CLEARABLE) if (!own.has(name)) lines.push(`${name}=`);
  if (!keepLibraryPath && !own.has('LD_LIBRARY_PATH')) lines.push('unset LD_LIBRARY_PATH');
  return `${lines.join('\n')}\n`;
}
