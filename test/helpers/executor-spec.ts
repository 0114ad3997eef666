import type { ExecutorSpec } from '../../src/executors/executor.js';
import { TEST_IMAGE } from './docker.js';
import { Sink } from './streams.js';

export type TestExecutorSpec = ExecutorSpec & { stdout: Sink; stderr: Sink };

/** An executor spec on the test image: no env, mounts, limits or network; output into Sinks. */
export function executorSpec(command: string[], extra: Partial<ExecutorSpec> = {}): TestExecutorSpec {
  return {
    image: TEST_IMAGE,
    command,
    env: {},
    bindMounts: {},
    vcpus: 0,
    ramBytes: 0,
    enableNetwork: false,
    ...extra,
    stdout: new Sink(),
    stderr: new Sink(),
  };
}
