import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DockerExecutor } from '../../src/executors/docker/docker-executor.js';
import { DockerRuntime } from '../../src/executors/docker/runtime.js';
import type { ContainerExecutor, ExecStream, ExecutorSpec } from '../../src/executors/executor.js';
import { RUNTIME_KINDS, type RuntimeKind } from '../../src/executors/index.js';
import { SingularityRuntime } from '../../src/executors/singularity/runtime.js';
import { SingularityExecutor } from '../../src/executors/singularity/singularity-executor.js';
import { TEST_IMAGE, testDocker, testImageTarball, testLabels } from '../helpers/docker.js';
import { executorSpec } from '../helpers/executor-spec.js';
import { openTestPodman } from '../helpers/podman.js';
import { testSingularityBin } from '../helpers/singularity.js';

/**
 * An exec into a running job is confined like the job itself, on every runtime openRuntime
 * knows: the job's capabilities, no-new-privileges, cgroup and uid (or the requested user's,
 * with no capabilities); the request's variables; a terminal that follows resizes; the exit code;
 * and nothing of the job's filesystem runs with more than the job's privileges. Where a runtime
 * keeps a promise differently, its entry says so and the test checks the difference.
 */
interface ExecRuntime {
  /** null when it can be tested here, otherwise why not. */
  unavailable: string | null;
  make(testName: string): ContainerExecutor;
  /** Whether an exec gets the job's seccomp filter; when not, why (docs/apptainer.md). */
  seccomp: { kept: true } | { kept: false; why: string };
  /** Whether the exec's terminal has a name in the container's /dev/pts (`tty`); when not, why. */
  ttyName: { named: true } | { named: false; why: string };
}

const scratch = await mkdtemp(join(tmpdir(), 'stevedore-exec-'));
const docker = new DockerRuntime({ client: testDocker(), holders: { labels: testLabels('exec-holders') } });
const { podman, reason: podmanReason } = await openTestPodman('exec-conformance-holders');
const bin = await testSingularityBin();
const singularity =
  bin === null
    ? 'neither apptainer nor singularity is installed (scripts/setup.sh test installs it)'
    : await SingularityRuntime.open({
        bin,
        sifCache: join(scratch, 'sif'),
        stateDir: join(scratch, 'state'),
      }).catch((error: Error) => error.message);

afterAll(async () => {
  await docker.close();
  expect(await podman?.close()).toEqual([]);
  await rm(scratch, { recursive: true, force: true });
});

const RUNTIMES: Record<RuntimeKind, ExecRuntime> = {
  docker: {
    unavailable: null,
    make: (name) => new DockerExecutor({ runtime: docker, labels: testLabels(name) }),
    seccomp: { kept: true },
    ttyName: { named: true },
  },
  podman: {
    unavailable: podmanReason,
    make: (name) => {
      if (!podman) throw new Error(`podman unavailable: ${podmanReason}`);
      return new DockerExecutor({ runtime: podman.runtime, labels: testLabels(name) });
    },
    seccomp: { kept: true },
    ttyName: { named: true },
  },
  singularity: {
    unavailable: typeof singularity === 'string' ? singularity : null,
    make: (name) => {
      if (typeof singularity === 'string') throw new Error(singularity);
      return new SingularityExecutor({ runtime: singularity, labels: testLabels(name) });
    },
    seccomp: {
      kept: false,
      why: 'no host program installs a seccomp filter between entering the namespaces and running the command, and Apptainer cannot join a running container (docs/apptainer.md)',
    },
    ttyName: {
      named: false,
      why: "the terminal is a pseudo-terminal of the worker host's (util-linux script), which the container's own /dev/pts does not list; isatty, its size and resizes work (docs/apptainer.md)",
    },
  },
};

/** What a process says of itself: its confinement, and (apart) its seccomp mode. */
const SELF =
  'grep -E "^(Uid|Gid|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):" /proc/self/status; cat /proc/self/cgroup';
const SECCOMP = 'grep "^Seccomp:" /proc/self/status';

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Everything a stream gives, as text, as it comes. */
function gather(stream: Readable | null): { text: string; done: Promise<void> } {
  const out = { text: '', done: Promise.resolve() };
  if (!stream) return out;
  out.done = new Promise((resolve) => {
    stream.on('data', (chunk: Buffer) => {
      out.text += chunk.toString('utf8');
    });
    stream.once('close', resolve);
    stream.once('end', resolve);
    stream.once('error', () => resolve());
  });
  return out;
}

async function run(exec: ExecStream, input?: string) {
  const stdout = gather(exec.stdout);
  const stderr = gather(exec.stderr);
  if (input !== undefined) exec.stdin?.end(input);
  const exitCode = await exec.exitCode;
  await Promise.all([stdout.done, stderr.done]);
  return { exitCode, stdout: stdout.text, stderr: stderr.text };
}

describe('exec confinement', () => {
  it('has an entry for every runtime openRuntime knows', () => {
    expect(Object.keys(RUNTIMES).sort()).toEqual([...RUNTIME_KINDS].sort());
  });
});

for (const [kind, runtime] of Object.entries(RUNTIMES) as [RuntimeKind, ExecRuntime][]) {
  if (runtime.unavailable !== null) {
    describe(`${kind} exec confinement`, () => {
      console.warn(`[skip] ${kind} exec confinement: ${runtime.unavailable}`);
      it.skip(`skipped: ${runtime.unavailable}`, () => undefined);
    });
    continue;
  }

  describe(`${kind} exec confinement`, () => {
    const open: ContainerExecutor[] = [];
    const dirs: string[] = [];
    afterEach(async () => {
      for (const e of open.splice(0)) await e.close();
      for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
    });

    /** A running job that has said what it is (`SELF`, then END) and waits. */
    async function job(extra: Partial<ExecutorSpec> = {}) {
      const executor = runtime.make(expect.getState().currentTestName?.slice(0, 200) ?? 'exec');
      open.push(executor);
      const spec = executorSpec(['/bin/sh', '-c', `${SELF}; ${SECCOMP}; echo END; exec sleep 600`], {
        env: { JOB_VAR: 'from the job' },
        ...extra,
      });
      const loaded = await executor.loadImage({
        image: TEST_IMAGE,
        tarballPath: testImageTarball(),
        pullPolicy: 'if-not-present',
      });
      await executor.create(spec, loaded);
      await executor.start();
      await waitFor(() => spec.stdout.text.includes('END\n'));
      const [self, seccomp] = spec.stdout.text.replace('END\n', '').split(/(?=^Seccomp:)/m);
      return { executor, self: self as string, seccomp: seccomp as string };
    }

    it("an exec has the job's uid, capability sets, no-new-privileges and cgroup", async () => {
      const j = await job();
      const own = await j.executor.exec(['/bin/sh', '-c', SELF]);
      expect(own).toEqual({ exitCode: 0, stdout: j.self, stderr: '' });
      expect(j.self).toMatch(/^NoNewPrivs:\t1$/m);
      const streamed = await run(
        await j.executor.execStream({ command: ['/bin/sh', '-c', SELF], stdin: false }),
      );
      expect(streamed).toEqual({ exitCode: 0, stdout: j.self, stderr: '' });
      const seccomp = await j.executor.exec(['/bin/sh', '-c', SECCOMP]);
      expect(j.seccomp).toBe('Seccomp:\t2\n');
      if (runtime.seccomp.kept) expect(seccomp.stdout).toBe(j.seccomp);
      // On purpose: the exec runs without the job's filter here (runtime.seccomp.why).
      else expect(seccomp.stdout).toBe('Seccomp:\t0\n');
    });

    it('another user gets no capabilities at all, and stays in the job cgroup with no-new-privileges', async () => {
      const j = await job();
      const other = await j.executor.exec(['/bin/sh', '-c', SELF], { user: 'nobody' });
      expect(other.exitCode).toBe(0);
      expect(other.stdout).toMatch(/^Uid:\t65534\t65534\t65534\t65534$/m);
      expect(other.stdout).toMatch(/^CapPrm:\t0{16}$/m);
      expect(other.stdout).toMatch(/^CapEff:\t0{16}$/m);
      expect(other.stdout).toMatch(/^CapAmb:\t0{16}$/m);
      expect(other.stdout).toMatch(/^NoNewPrivs:\t1$/m);
      const bounding = (text: string) => /^CapBnd:.*$/m.exec(text)?.[0];
      expect(bounding(other.stdout)).toBe(bounding(j.self));
      expect(other.stdout.slice(other.stdout.indexOf('\n', other.stdout.indexOf('NoNewPrivs')) + 1)).toBe(
        j.self.slice(j.self.indexOf('\n', j.self.indexOf('NoNewPrivs')) + 1),
      );
    });

    it("sees the job's variables and the request's, each byte as sent, and the working directory asked for", async () => {
      const j = await job();
      const value = "it's $HOME `id` \\n\n\u00e9 %s";
      const r = await run(
        await j.executor.execStream({
          command: ['sh', '-c', 'printf "%s|%s|%s" "$JOB_VAR" "$EXEC_VAR" "$(pwd)"'],
          env: { EXEC_VAR: value },
          workdir: '/proc',
          stdin: false,
        }),
      );
      expect(r).toEqual({ exitCode: 0, stdout: `from the job|${value}|/proc`, stderr: '' });
    });

    it('gives the exit codes 0, 3 and 127 (no such program)', async () => {
      const j = await job();
      const code = async (command: string[]) =>
        (await run(await j.executor.execStream({ command, stdin: false }))).exitCode;
      expect(await code(['true'])).toBe(0);
      expect(await code(['sh', '-c', 'exit 3'])).toBe(3);
      expect(await code(['no-such-program-here'])).toBe(127);
      const piped = await run(await j.executor.execStream({ command: ['cat'], stdin: true }), 'piped in');
      expect(piped).toEqual({ exitCode: 0, stdout: 'piped in', stderr: '' });
    });

    it('gives a terminal of the size asked for, and a resize reaches the program', async () => {
      const j = await job();
      const exec = await j.executor.execStream({
        // Each size once a line arrives: Docker before API 1.42 sizes the terminal just after the start.
        command: ['sh', '-c', 'read a; stty size; read b; stty size; [ -t 0 ] && echo is-a-tty; tty'],
        stdin: true,
        tty: { cols: 100, rows: 30 },
      });
      expect(exec.stderr).toBeNull();
      const out = gather(exec.stdout);
      exec.stdin?.write('\n');
      await waitFor(() => out.text.includes('30 100'));
      await exec.resize({ cols: 120, rows: 40 });
      exec.stdin?.write('\n');
      const exitCode = await exec.exitCode;
      await out.done;
      const text = out.text.replaceAll('\r', '');
      expect(text).toMatch(/30 100\n[\s\S]*40 120\nis-a-tty\n/);
      if (runtime.ttyName.named) {
        expect(exitCode).toBe(0);
        expect(text).toMatch(/is-a-tty\n\/dev\/pts\/\d+\n$/);
      } else {
        // On purpose: a terminal without a name in the container (runtime.ttyName.why).
        expect(exitCode).toBe(1);
        expect(text).toMatch(/is-a-tty\nnot a tty\n$/);
      }
    });

    it("runs nothing of the job's filesystem with more than the job's privileges, whatever the job put there", async () => {
      // The job's mount holds programs named like every step an exec might take, first on the
      // job's PATH; each records who ran it. A request variable names a library of the mount:
      // a dynamic program that acted on it would say so on stderr.
      const evil = await mkdtemp(join(tmpdir(), 'stevedore-evil-'));
      const out = await mkdtemp(join(tmpdir(), 'stevedore-evil-out-'));
      dirs.push(evil, out);
      await chmod(out, 0o777);
      for (const name of ['sh', 'busybox', 'setpriv', 'nsenter', 'env', 'script', 'stty', 'cat']) {
        await writeFile(
          join(evil, name),
          // Absolute paths inside, so a fake never runs another fake.
          `#!/bin/sh\n{ ${SELF.replace('grep', '/bin/grep').replace('cat', '/bin/cat')}; } > /out/${name}.$$ 2>&1\nexec /bin/${name} "$@"\n`,
          { mode: 0o755 },
        );
      }
      const j = await job({
        env: { JOB_VAR: 'x', PATH: '/evil:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
        bindMounts: {
          '/evil': { hostPath: evil, readOnly: true },
          '/out': { hostPath: out, readOnly: false },
        },
      });
      // The job's own `cat` ran from there too: only what the exec ran counts.
      const before = new Set(await readdir(out));
      const r = await run(
        await j.executor.execStream({
          command: ['sh', '-c', 'echo ran'],
          env: { LD_PRELOAD: '/evil/preload.so', LD_LIBRARY_PATH: '/evil' },
          stdin: false,
        }),
      );
      expect(r).toEqual({ exitCode: 0, stdout: 'ran\n', stderr: '' });
      const records = (await readdir(out)).filter((f) => !before.has(f));
      // The command itself (`sh`, found first in /evil as the job's PATH says): the job's own confinement.
      expect(records.map((f) => f.split('.')[0])).toEqual(['sh']);
      expect(await readFile(join(out, records[0] as string), 'utf8')).toBe(j.self);
    });
  });
}
