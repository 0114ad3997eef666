import { PassThrough } from 'node:stream';
import type { ExecutorSpec } from '../../src/executors/executor.js';

/** A minimal executor spec for the pure create-option mappings (Docker's body, Podman's libpod body). */
export function mappingSpec(extra: Partial<ExecutorSpec> = {}): ExecutorSpec {
  return {
    image: 'img:1',
    command: ['echo', 'hi'],
    env: {},
    bindMounts: {},
    vcpus: 0,
    ramBytes: 0,
    enableNetwork: false,
    stdout: new PassThrough(),
    stderr: new PassThrough(),
    ...extra,
  };
}
