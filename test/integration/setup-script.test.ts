import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const SETUP_SOURCE = join(import.meta.dirname, '..', '..', 'scripts', 'setup.sh');
/**
 * The script runs from a copy in a directory everyone may enter: the checkout may sit under a
 * directory only its owner can (a mktemp -d clone), where nobody could not even read the script.
 */
let SETUP = SETUP_SOURCE;
/** What setup.sh itself runs besides the things it checks for. */
const SCRIPT_TOOLS = ['dirname', 'dpkg-query', 'grep', 'docker', 'timeout'];

const setup = (args: string[], options: { asNobody?: boolean; env?: Record<string, string> } = {}) => {
  const command = options.asNobody
    ? ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', 'env']
    : ['env'];
  const env = Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`);
  const [bin, ...rest] = [...command, ...env, '/bin/bash', SETUP, ...args];
  return execa(bin as string, rest, { reject: false });
};

// The machine-changing path (apt-get, starting dockerd) is what .ci/run exercises on a fresh
// machine; here only what is safe on a shared one: re-runs, reports and the non-root line.
const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('[skip] setup.sh tests: they switch to the nobody user and re-run set-up as root');

describe.skipIf(!isRoot)('scripts/setup.sh', () => {
  let bareBin: string;
  let copy: string;
  beforeAll(async () => {
    copy = await mkdtemp(join(tmpdir(), 'stevedore-setup-copy-'));
    await chmod(copy, 0o755);
    await mkdir(join(copy, 'scripts'), { mode: 0o755 });
    SETUP = join(copy, 'scripts', 'setup.sh');
    await copyFile(SETUP_SOURCE, SETUP);
    await chmod(SETUP, 0o755);
    // Installed already: the copy must not look like a checkout that needs `npm ci`.
    await symlink(join(SETUP_SOURCE, '..', '..', 'node_modules'), join(copy, 'node_modules'));
    // A PATH with only the script's own tools: dockerd, redis-server, flock and ip look missing.
    bareBin = await mkdtemp(join(tmpdir(), 'stevedore-setup-bin-'));
    await chmod(bareBin, 0o755); // nobody runs from it too
    for (const tool of SCRIPT_TOOLS) {
      const found = ['/usr/local/bin', '/usr/bin', '/bin']
        .map((d) => join(d, tool))
        .find((p) => existsSync(p));
      if (found) await symlink(found, join(bareBin, tool));
    }
  });
  afterAll(async () => {
    await rm(bareBin, { recursive: true, force: true });
    await rm(copy, { recursive: true, force: true });
  });

  it('as root with everything there: does nothing, says nothing, fast, however often it runs', async () => {
    for (const group of ['test', 'demo', 'test']) {
      const started = Date.now();
      const r = await setup([group]);
      expect(r).toMatchObject({ exitCode: 0, stdout: '', stderr: '' });
      expect(Date.now() - started).toBeLessThan(5_000);
    }
    expect(await setup(['--check'])).toMatchObject({ exitCode: 0, stdout: '' });
  });

  it('--check lists what is missing per group and changes nothing', async () => {
    const env = { PATH: bareBin };
    expect(await setup(['test', '--check'], { env })).toMatchObject({
      exitCode: 1,
      stdout:
        'setup: missing docker.io redis-server util-linux iproute2 docker-registry apache2-utils docker-compose debootstrap openssl chromium bsdutils podman',
    });
    expect(await setup(['demo', '--check'], { env })).toMatchObject({
      exitCode: 1,
      stdout: 'setup: missing docker.io redis-server util-linux',
    });
  });

  it('not as root: one line saying what is missing and what to run', async () => {
    const stopped = await setup(['demo'], {
      asNobody: true,
      env: { DOCKER_HOST: 'unix:///nonexistent.sock' },
    });
    expect(stopped).toMatchObject({
      exitCode: 1,
      stdout: '',
      stderr: 'setup: the Docker engine is not running: run once as root: sudo bash scripts/setup.sh demo',
    });
    const bare = await setup(['test'], { asNobody: true, env: { PATH: bareBin } });
    expect(bare.exitCode).toBe(1);
    expect(bare.stderr).toBe(
      'setup: missing docker.io redis-server util-linux iproute2 docker-registry apache2-utils docker-compose debootstrap openssl chromium bsdutils podman: run once as root: sudo bash scripts/setup.sh test; the Docker engine at /var/run/docker.sock does not let this user in: join the docker group (sudo usermod -aG docker $USER, then log in again) or run as root',
    );
  });
});
