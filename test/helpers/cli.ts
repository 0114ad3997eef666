import { join } from 'node:path';
import { execa, type Options, type ResultPromise } from 'execa';

const MAIN = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');

/** Runs the stevedore CLI from source in a real child process. */
export function stevedore(args: string[], options: Options = {}): ResultPromise {
  return execa(process.execPath, ['--import', 'tsx', MAIN, ...args], { reject: false, ...options });
}
