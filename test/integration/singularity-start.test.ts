import { chmod, mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SingularityRuntime } from '../../src/executors/singularity/runtime.js';
import { SingularityExecutor } from '../../src/executors/singularity/singularity-executor.js';
import { coerceError, PhaseError } from '../../src/jobs/errors.js';
import { testDocker, testLabels } from '../helpers/docker.js';
import { executorSpec } from '../helpers/executor-spec.js';
import { buildTestImage, readProgress, removeImage } from '../helpers/registry-images.js';
import { testSingularityBin } from '../helpers/singularity.js';

// When an Apptainer container counts as started (its command runs), and how long exec() waits for it.
const bin = await testSingularityBin();
const docker = testDocker();
/** The test image with its busybox also at the path the worker's /bin/sh resolves to (Debian: /usr/bin/dash). */
const SAME_PATH = 'stevedore-test/sif-same-path:1';
/** The test image with /variant holding "start". */
const START_BASE = 'stevedore-test/sif-start-base:1';
let dir: string;
let hostShell: string;
const open: SingularityExecutor[] = [];

describe.skipIf(bin === null)('Apptainer start detection', () => {
  if (bin === null) console.warn('[skip] singularity start: neither apptainer nor singularity is installed');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stevedore-sif-start-'));
    hostShell = await realpath('/bin/sh');
    await buildTestImage(docker, START_BASE, { variant: 'start' });
    const context = join(dir, 'context');
    await mkdir(context, { recursive: true });
    await writeFile(
      join(context, 'Dockerfile'),
      `FROM ${START_BASE}\nRUN mkdir -p $(dirname ${hostShell}) /x && cp /bin/busybox ${hostShell} && ln -s ${hostShell} /x/sh\n`,
    );
    const stream = await docker.buildImage(
      { context, src: ['Dockerfile'] },
      { t: SAME_PATH, rm: true, forcerm: true },
    );
    await readProgress(stream, `building ${SAME_PATH}`);
  });

  afterEach(async () => {
    for (const e of open.splice(0)) await e.close();
  });

  afterAll(async () => {
    await removeImage(docker, SAME_PATH);
    await removeImage(docker, START_BASE);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function runtime(options: { bin?: string; startTimeoutMs?: number } = {}) {
    return SingularityRuntime.open({
      bin: options.bin ?? (bin as string),
      sifCache: join(dir, 'sif'),
      stateDir: join(dir, 'state'),
      startTimeoutMs: options.startTimeoutMs,
    });
  }

  function executor(rt: SingularityRuntime, name: string): SingularityExecutor {
    const e = new SingularityExecutor({ runtime: rt, labels: testLabels(name) });
    open.push(e);
    return e;
  }

  it('sees a command start whose program has the same path inside as the worker shell has outside', async () => {
    // Before, exe paths were compared: the image's /usr/bin/dash looked like the wrapper shell, and
    // exec() waited for the container to exit (forever here: it reads a stdin that stays open).
    const e = executor(await runtime(), 'same-path');
    const loaded = await e.loadImage({ image: SAME_PATH, pullPolicy: 'if-not-present' });
    const stdin = new PassThrough();
    await e.create(
      {
        ...executorSpec(['/x/sh', '-c', 'read line; echo got $line'], { image: SAME_PATH }),
        stdin,
      },
      loaded,
    );
    await e.start();
    expect(await e.exec(['cat', '/variant'])).toEqual({ exitCode: 0, stdout: 'start', stderr: '' });
    expect(await e.pid()).toBeGreaterThan(0);
    stdin.end('bye\n');
    expect(await e.wait()).toBe(0);
  });

  it('exec() fails past the start bound, naming the phase, when the command never shows', async () => {
    // A runtime program stuck before its container starts (as on a hung mount): the real Apptainer
    // for --version and build, a process that never starts a container for exec.
    const stuck = join(dir, 'stuck-apptainer');
    await writeFile(stuck, `#!/bin/sh\nif [ "$1" = exec ]; then exec sleep 600; fi\nexec ${bin} "$@"\n`);
    await chmod(stuck, 0o755);
    const e = executor(await runtime({ bin: stuck, startTimeoutMs: 2_000 }), 'stuck');
    const loaded = await e.loadImage({ image: SAME_PATH, pullPolicy: 'if-not-present' });
    await e.create(executorSpec(['sleep', '30'], { image: SAME_PATH }), loaded);
    await e.start(); // logs that the command was not seen, and returns
    const failed = await e.exec(['true']).catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(PhaseError);
    expect(failed).toMatchObject({ phase: 'exec' });
    expect(coerceError(failed).message).toMatch(/not seen running within 2 s.*stop the job/);
    await e.stop({ graceMs: 0 });
    expect(await e.wait()).toBe(137);
  });
});
