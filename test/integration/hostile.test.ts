import { join } from 'node:path';
import Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import { RUNTIME_KINDS, type RuntimeKind } from '../../src/executors/index.js';
import { dockerApiWatch, singularityWatch } from '../helpers/engine-watch.js';
import { podmanMissing } from '../helpers/podman.js';
import { testSingularityBin } from '../helpers/singularity.js';
import { type HostileRuntime, hostileSuite } from './hostile-suite.js';

/**
 * The hostile suite on every runtime openRuntime() knows. A kind added to RUNTIME_KINDS without an
 * entry here fails the typecheck (the record is total) and the test below; a runtime not
 * installed here is skipped with the reason printed.
 *
 * Each entry's `expect` is the table of where that runtime keeps a promise differently, with why.
 * Everything else (no secret read, no host file written, no capability beyond Docker's default
 * set, no-new-privileges, no mount, no module, no network change, own pid/mount/net/ipc
 * namespaces, only its own binds) holds on every runtime.
 */
const bin = await testSingularityBin();
const podmanSocket = (scratch: string) => join(scratch, 'podman.sock');

const RUNTIMES: Record<RuntimeKind, HostileRuntime> = {
  docker: {
    unavailable: async () => null,
    workerConfig: () => ({ runtime: 'docker' }),
    watch: (_config, queue) => dockerApiWatch(new Dockerode(), queue),
    expect: {
      seccomp: { filtered: true },
      ownBinds: {
        pattern:
          /^(\/var\/lib\/docker\/containers\/[0-9a-f]{64}\/(hosts|hostname|resolv\.conf)|\/usr\/(bin|libexec\/docker)\/(docker-init|tini-static|tini))$/,
        why: "the engine's /etc/hosts, /etc/hostname and /etc/resolv.conf of the job (or of its namespace holder), and its init (tini at /sbin/docker-init), each a file bound read-only",
      },
    },
  },
  podman: {
    unavailable: async () => podmanMissing(),
    // Nothing serves this socket: the worker starts `podman system service` on it, as in production.
    workerConfig: (scratch) => ({ runtime: 'podman', podmanSocket: podmanSocket(scratch) }),
    watch: (config, queue) => dockerApiWatch(new Dockerode({ socketPath: config.podmanSocket }), queue),
    expect: {
      seccomp: { filtered: true },
      ownBinds: {
        pattern:
          /^(\/(var\/lib|run)\/containers\/storage\/overlay-containers\/[0-9a-f]{64}\/userdata\/(hosts|hostname|resolv\.conf|\.containerenv)|\/usr\/(bin|libexec\/podman)\/(catatonit|tini-static|tini))$/,
        why: "Podman's /etc/hosts, /etc/hostname, /etc/resolv.conf and /run/.containerenv of the job (or of its namespace holder), and its init (catatonit or tini at /run/podman-init), each a file",
      },
    },
  },
  singularity: {
    unavailable: async () =>
      bin === null
        ? 'neither apptainer nor singularity is installed (scripts/setup.sh test installs it)'
        : null,
    workerConfig: (scratch) => ({
      runtime: 'singularity',
      singularity: { bin: bin ?? undefined, sifCache: join(scratch, 'sif') },
    }),
    watch: (config) =>
      singularityWatch(join(config.stateDir, 'singularity'), config.singularity?.sifCache ?? ''),
    expect: {
      // Apptainer has no default filter: the worker passes one of its own (--security seccomp:).
      seccomp: { filtered: true },
      ownBinds: {
        pattern:
          /^(\/usr\/share\/zoneinfo\/.+|.+\/singularity\/env\/[0-9a-f-]{36}\.sh|.+\/singularity\/hardening\/(empty|hosts))$/,
        why: "the host's time zone file at /etc/localtime (apptainer.conf `mount localtime`), and the worker's own files from its state dir: the job's env script in /.singularity.d/env, an empty directory over /proc/sys/fs/binfmt_misc, and a read-only /etc/hosts naming localhost (apptainer.conf's binds are off, which left /etc/hosts empty)",
      },
      addedEnv: {
        pattern: /^((APPTAINER|SINGULARITY)_[A-Z_]+|LD_LIBRARY_PATH|PS1|PROMPT_COMMAND)$/,
        why: "Apptainer describes the container in APPTAINER_* (and SINGULARITY_* twins), some read-only, and its action script exports PS1 and PROMPT_COMMAND after every env script has run; LD_LIBRARY_PATH=/.singularity.d/libs carries the libraries --nv/--rocm bind. The worker's env script takes away what it can (README, Apptainer)",
      },
    },
  },
};

describe('the hostile suite', () => {
  it('has an entry for every runtime openRuntime knows', () => {
    expect(Object.keys(RUNTIMES).sort()).toEqual([...RUNTIME_KINDS].sort());
  });
});

for (const kind of RUNTIME_KINDS) {
  const runtime = RUNTIMES[kind] as HostileRuntime | undefined;
  if (!runtime) {
    describe(`${kind}: hostile suite`, () => {
      it('has an entry in hostile.test.ts', () => {
        expect.fail(`runtime ${kind} has no hostile-suite entry: add one to RUNTIMES in hostile.test.ts`);
      });
    });
    continue;
  }
  hostileSuite(kind, runtime, await runtime.unavailable());
}
