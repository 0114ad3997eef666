import { copyFile, mkdtemp, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = join(import.meta.dirname, '..', '..');
const TSC = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
/** tsc over the whole source on a loaded two-core machine: well past the default hook timeout. */
const BUILD_TIMEOUT_MS = 180_000;

/** What a producer's process must never load: the engines' clients, the process runner, our runtime side. */
const RUNTIME_SIDE = [
  /\/node_modules\/(dockerode|docker-modem|execa|ssh2)\//,
  /\/dist\/(executors|worker|server|dashboard|cli|policy)\//,
];

/**
 * Records every module URL that Node's ESM loader resolves, one per line, into the file named by
 * `initialize`'s data. Every import of ours and of an ESM package passes here, and a CommonJS
 * package such as dockerode does too when ESM code imports it (ours is all ESM); the require
 * cache is checked as well, for CommonJS loading CommonJS.
 */
const RECORDING_HOOKS = `
import { appendFileSync } from 'node:fs';
let log;
export function initialize(data) { log = data.log; }
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  appendFileSync(log, resolved.url + '\\n');
  return resolved;
}
`;

let dir: string;

/**
 * A fresh build of the package, with its own package.json, in a scratch directory: the test
 * imports it by its package name (Node resolves a package's own name through its "exports"),
 * exactly as a producer's code does, whatever state the repository's dist/ is in.
 */
beforeAll(async () => {
  dir = await realpath(await mkdtemp(join(tmpdir(), 'stevedore-entry-')));
  await execa(
    process.execPath,
    [TSC, '-p', join(REPO, 'tsconfig.build.json'), '--outDir', join(dir, 'dist')],
    {
      cwd: REPO,
    },
  );
  await copyFile(join(REPO, 'package.json'), join(dir, 'package.json'));
  await symlink(await realpath(join(REPO, 'node_modules')), join(dir, 'node_modules'));
  await writeFile(join(dir, 'hooks.mjs'), RECORDING_HOOKS);
  await writeFile(
    join(dir, 'register.mjs'),
    `import { register } from 'node:module';
register('./hooks.mjs', import.meta.url, { data: { log: process.env.STEVEDORE_LOADED_LOG } });`,
  );
}, BUILD_TIMEOUT_MS);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Imports `specifier` in a new Node process and returns the modules it loaded, and its exports. */
async function load(specifier: string): Promise<{ loaded: string[]; exports: string[] }> {
  const log = join(dir, `loaded-${specifier.replace(/\W/g, '_')}.txt`);
  await writeFile(log, '');
  const script = `
    import { createRequire } from 'node:module';
    const m = await import(${JSON.stringify(specifier)});
    const required = Object.keys(createRequire(import.meta.url).cache).map((p) => 'file://' + p);
    console.log(JSON.stringify({ required, exports: Object.keys(m) }));`;
  const { stdout } = await execa(
    process.execPath,
    ['--import', './register.mjs', '--input-type=module', '-e', script],
    { cwd: dir, env: { STEVEDORE_LOADED_LOG: log } },
  );
  const { required, exports } = JSON.parse(stdout) as { required: string[]; exports: string[] };
  const resolved = (await readFile(log, 'utf8')).split('\n').filter((line) => line !== '');
  return { loaded: [...new Set([...resolved, ...required])], exports };
}

const runtimeSide = (loaded: string[]): string[] =>
  loaded.filter((url) => RUNTIME_SIDE.some((pattern) => pattern.test(url)));

describe('stevedore/client, the producer entry point', () => {
  it('gives the client without loading dockerode, execa or the executors', async () => {
    const { loaded, exports } = await load('stevedore/client');
    expect(loaded).toContain(`file://${dir}/dist/client.js`);
    expect(loaded).toContain(`file://${dir}/dist/jobs/client.js`);
    expect(runtimeSide(loaded)).toEqual([]);
    expect(exports).toEqual(
      expect.arrayContaining(['StevedoreClient', 'parseJobSpec', 'InvalidSpecError', 'UnknownJobError']),
    );
    expect(exports).not.toContain('startWorker');
    expect(exports).not.toContain('openRuntime');
  });

  it('is what the whole package loads the runtime side on top of (the check sees dockerode and execa)', async () => {
    const { loaded, exports } = await load('stevedore');
    const found = runtimeSide(loaded);
    expect(found.some((url) => url.includes('/node_modules/dockerode/'))).toBe(true);
    expect(found.some((url) => url.includes('/node_modules/execa/'))).toBe(true);
    expect(exports).toEqual(expect.arrayContaining(['StevedoreClient', 'startWorker', 'openRuntime']));
  });
});
