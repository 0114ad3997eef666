import { afterAll, describe, expect, it } from 'vitest';
import { DockerExecutor } from '../../src/executors/index.js';
import { TEST_IMAGE, testImageTarball, testLabels } from '../helpers/docker.js';
import { executorSpec } from '../helpers/executor-spec.js';
import { openTestPodman } from '../helpers/podman.js';
import { expectationsOf, RUNTIME_EXPECTATIONS } from '../helpers/runtime-expectations.js';
import { Sink } from '../helpers/streams.js';
import { executorSuite } from './executor-suite.js';

// The service this file starts on a socket of its own, as a worker does when none runs.
const { podman, reason } = await openTestPodman('podman-conformance-holders');
afterAll(async () => {
  expect(await podman?.close()).toEqual([]);
});

executorSuite(
  {
    name: 'podman',
    unavailable: async () => reason,
    expected: () => (podman ? expectationsOf(podman.runtime) : RUNTIME_EXPECTATIONS.podman),
    runtimeVersion: /^podman .*\d+\.\d+/,
    limitsSeen: 'inside',
    make: (testName) => {
      if (!podman) throw new Error(`podman unavailable: ${reason}`);
      return new DockerExecutor({ runtime: podman.runtime, labels: testLabels(testName.slice(0, 200)) });
    },
    forgetImage: async () => {
      await podman?.runtime.docker
        .getImage(TEST_IMAGE)
        .remove({ force: true })
        .catch(() => undefined);
    },
  },
  reason,
);

describe.skipIf(podman === null)('podman adoption', () => {
  it('takes over a container another executor let go of, replaying its output byte-exact from k8s-file', async () => {
    const runtime = (podman as NonNullable<typeof podman>).runtime;
    const image = {
      image: TEST_IMAGE,
      tarballPath: testImageTarball(),
      pullPolicy: 'if-not-present' as const,
    };
    const spec = executorSpec([
      'sh',
      '-c',
      'for i in 1 2 3 4; do echo out$i; echo err$i >&2; sleep 0.3; done; exit 4',
    ]);
    const first = { stdout: spec.stdout, stderr: spec.stderr };
    const a = new DockerExecutor({ runtime, labels: testLabels('podman adoption') });
    const loaded = await a.loadImage(image);
    await a.create(spec, loaded);
    await a.start();
    for (let i = 0; i < 200 && !first.stdout.text.includes('out1'); i++)
      await new Promise((r) => setTimeout(r, 20));
    a.detach();
    const kept = { stdout: first.stdout.buffer.length, stderr: first.stderr.buffer.length };
    const rest = { stdout: new Sink(), stderr: new Sink() };
    const b = new DockerExecutor({ runtime, labels: testLabels('podman adoption') });
    try {
      expect(await b.adopt(a.containerId, rest, kept)).toMatchObject({ replayed: true });
      expect(await b.wait()).toBe(4);
      expect(first.stdout.text + rest.stdout.text).toBe('out1\nout2\nout3\nout4\n');
      expect(first.stderr.text + rest.stderr.text).toBe('err1\nerr2\nerr3\nerr4\n');
    } finally {
      await b.close();
    }
  });
});
