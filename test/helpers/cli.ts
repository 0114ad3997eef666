import { join } from 'node:path';
import { execa, type Options, type ResultPromise } from 'execa';

const MAIN = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');

/** Runs the stevedore CLI from source in a real child process. */
export function stevedore(args: string[], options: Options = {}): ResultPromise {
  // A worker told to stop may take seconds on a loaded machine: execa's own 5 s SIGKILL would cut its clean exit short.
  return execa(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    reject: false,
    forceKillAfterDelay: 30_000,
    ...options,
  });
}
