import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DockerExecutor } from '../executors/docker.js';

const run = promisify(execFile);
export const DEMO_IMAGE = 'stevedore-test/busybox:1';

/** Builds (or reuses) the bundled busybox test image tarball and returns its path. */
export async function bundledImageTarball(): Promise<string> {
  const script = fileURLToPath(new URL('../../test/fixtures/build-image.sh', import.meta.url));
  const { stdout } = await run('bash', [script]);
  return stdout.trim();
}

/** Runs one container through the executor and prints what happened. */
export async function demo(): Promise<number> {
  const tarball = await bundledImageTarball();
  const executor = new DockerExecutor({ labels: { 'stevedore.demo': '1' } });
  const started = Date.now();
  try {
    await executor.loadImage(DEMO_IMAGE, tarball);
    await executor.create({
      image: DEMO_IMAGE,
      command: ['sh', '-c', 'echo "hello from $(hostname)"; echo "this goes to stderr" >&2'],
      env: {},
      bindMounts: {},
      vcpus: 1,
      ramBytes: 64 * 1024 * 1024,
      enableNetwork: false,
      stdout: process.stdout,
      stderr: process.stderr,
    });
    await executor.start();
    const exitCode = await executor.wait();
    const result = {
      exitCode,
      runtime: await executor.runtime(),
      containerId: executor.containerId,
      durationMs: Date.now() - started,
    };
    console.log(JSON.stringify(result, null, 2));
    return exitCode;
  } finally {
    await executor.close();
  }
}
