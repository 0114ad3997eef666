import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ContainerExecutor, ExecutorSpec } from '../../src/executors/executor.js';
import { TEST_IMAGE, testImageTarball } from '../helpers/docker.js';
import { executorSpec } from '../helpers/executor-spec.js';
import type { RuntimeExpectations } from '../helpers/runtime-expectations.js';
import { Sink } from '../helpers/streams.js';

/** What the conformance suite needs to know about one runtime. */
export interface RuntimeUnderTest {
  name: string;
  /** null when the runtime can be tested here, otherwise why not. */
  unavailable(): Promise<string | null>;
  make(testName: string): ContainerExecutor;
  /** Removes the test image so the tarball path is exercised. */
  forgetImage(): Promise<void>;
  /** What the suite knows of this runtime beyond the contract (asked after a run: Podman may fall back to catatonit). */
  expected(): RuntimeExpectations;
  /** What runtime() says, e.g. "docker 20.10.24" or "apptainer version 1.4.5". */
  runtimeVersion: RegExp;
  /** Variables the runtime itself sets in every container, beyond HOSTNAME, HOME, PATH, PWD and SHLVL; none when absent. */
  runtimeEnv?: RegExp;
  /**
   * Where the container's limits can be read: `inside` its own /sys/fs/cgroup (Docker mounts the
   * container's cgroup there), or `host-cgroup`, the host's files of cgroupId() (Apptainer leaves
   * the host's view, so only the host can see the job's cgroup).
   */
  limitsSeen: 'inside' | 'host-cgroup';
}

interface Run {
  executor: ContainerExecutor;
  stdout: Sink;
  stderr: Sink;
}

/**
 * One behaviour suite for every ContainerExecutor: each bullet of the executor contract is
 * checked against the real runtime. Called once per runtime by its own test file.
 */
export function executorSuite(runtime: RuntimeUnderTest, reason: string | null): void {
  if (reason !== null) {
    describe(`${runtime.name} executor conformance`, () => {
      console.warn(`[skip] ${runtime.name} executor conformance: ${reason}`);
      it.skip(`skipped: ${reason}`, () => undefined);
    });
    return;
  }

  describe(`${runtime.name} executor conformance`, () => {
    const open: ContainerExecutor[] = [];
    const tempDirs: string[] = [];

    function executor(): ContainerExecutor {
      const e = runtime.make(expect.getState().currentTestName ?? 'conformance');
      open.push(e);
      return e;
    }

    const spec = executorSpec;

    async function run(
      command: string[],
      extra: Partial<ExecutorSpec> = {},
    ): Promise<Run & { exitCode: number }> {
      const started = await start(command, extra);
      const exitCode = await started.executor.wait();
      return { ...started, exitCode };
    }

    async function start(command: string[], extra: Partial<ExecutorSpec> = {}): Promise<Run> {
      const e = executor();
      const s = spec(command, extra);
      if (extra.stdout) s.stdout = extra.stdout as Sink;
      const loaded = await e.loadImage({
        image: TEST_IMAGE,
        tarballPath: testImageTarball(),
        pullPolicy: 'if-not-present',
      });
      await e.create(s, loaded);
      await e.start();
      return { executor: e, stdout: s.stdout, stderr: s.stderr };
    }

    async function tempDir(): Promise<string> {
      const dir = await mkdtemp(join(tmpdir(), 'stevedore-mount-'));
      tempDirs.push(dir);
      return dir;
    }

    afterEach(async () => {
      for (const e of open.splice(0)) await e.close();
      for (const d of tempDirs.splice(0)) await rm(d, { recursive: true, force: true });
    });

    describe('loadImage', () => {
      beforeAll(async () => {
        await runtime.forgetImage();
      });

      it('loads the image from a docker-save tarball, then is a no-op', async () => {
        const e = executor();
        const loaded = await e.loadImage({
          image: TEST_IMAGE,
          tarballPath: testImageTarball(),
          pullPolicy: 'if-not-present',
        });
        // From no registry: an id, but no repo digest.
        expect(loaded).toMatchObject({ source: 'tarball', imageDigest: null, pull: null });
        expect(loaded.imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
        await expect(
          e.loadImage({
            image: TEST_IMAGE,
            tarballPath: '/nonexistent/ignored-because-present.tar',
            pullPolicy: 'if-not-present',
          }),
        ).resolves.toEqual({
          request: {
            image: TEST_IMAGE,
            tarballPath: '/nonexistent/ignored-because-present.tar',
            pullPolicy: 'if-not-present',
          },
          source: 'present',
          imageId: loaded.imageId,
          imageDigest: null,
          pull: null,
        });
        await e.create(spec(['true']), loaded);
        await e.start();
        expect(await e.wait()).toBe(0);
      });

      it('create() runs the image it is handed, loaded again the same way if the runtime lost it since', async () => {
        const e = executor();
        const loaded = await e.loadImage({
          image: TEST_IMAGE,
          tarballPath: testImageTarball(),
          pullPolicy: 'if-not-present',
        });
        await expect(e.create(spec(['true'], { image: 'stevedore-test/other:9' }), loaded)).rejects.toThrow(
          /creating: the image given was loaded for stevedore-test\/busybox:1, the spec runs stevedore-test\/other:9/,
        );
        await runtime.forgetImage();
        const s = spec(['echo', 'ok']);
        await e.create(s, loaded);
        await e.start();
        expect(await e.wait()).toBe(0);
        expect(s.stdout.text).toBe('ok\n');
      });

      it('rejects a missing, an empty and a corrupt tarball with the reason', async () => {
        const dir = await tempDir();
        const empty = join(dir, 'empty.tar');
        const corrupt = join(dir, 'corrupt.tar');
        await writeFile(empty, '');
        await writeFile(corrupt, Buffer.alloc(4096, 7));
        const e = executor();
        await expect(
          e.loadImage({
            image: 'stevedore-test/absent:1',
            tarballPath: join(dir, 'missing.tar'),
            pullPolicy: 'if-not-present',
          }),
        ).rejects.toThrow(/loading-image: cannot read image tarball .*missing\.tar/);
        await expect(
          e.loadImage({ image: 'stevedore-test/absent:1', tarballPath: empty, pullPolicy: 'if-not-present' }),
        ).rejects.toThrow(/loading-image: .+/);
        await expect(
          e.loadImage({
            image: 'stevedore-test/absent:1',
            tarballPath: corrupt,
            pullPolicy: 'if-not-present',
          }),
        ).rejects.toThrow(/loading-image: .+/);
        await expect(e.loadImage({ image: 'stevedore-test/absent:1', pullPolicy: 'never' })).rejects.toThrow(
          /not present on this host.*"never"/,
        );
      });

      it('rejects a tarball that does not hold the image', async () => {
        await expect(
          executor().loadImage({
            image: 'stevedore-test/other:9',
            tarballPath: testImageTarball(),
            pullPolicy: 'if-not-present',
          }),
        ).rejects.toThrow(/does not contain stevedore-test\/other:9/);
      });
    });

    describe('running a command', () => {
      it('runs echo ok and captures stdout', async () => {
        const r = await run(['echo', 'ok']);
        expect(r.exitCode).toBe(0);
        expect(r.stdout.text).toBe('ok\n');
        expect(r.stderr.text).toBe('');
      });

      it.each([0, 1, 42])('reports exit code %i', async (code) => {
        expect((await run(['sh', '-c', `exit ${code}`])).exitCode).toBe(code);
      });

      it('reports 137 after SIGKILL', async () => {
        const r = await start(['sleep', '30']);
        await r.executor.stop({ graceMs: 0 });
        expect(await r.executor.wait()).toBe(137);
      });

      it('gives exactly the spec env, nothing from the worker', async () => {
        process.env.STEVEDORE_WORKER_SECRET = 'must-not-leak';
        const r = await run(['env'], { env: { A: '1', B: 'two words', EMPTY: '' } });
        delete process.env.STEVEDORE_WORKER_SECRET;
        const vars = Object.fromEntries(
          r.stdout.text
            .trim()
            .split('\n')
            .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
        );
        expect(vars).toMatchObject({ A: '1', B: 'two words', EMPTY: '' });
        // What every engine adds, and what this runtime is known to add (none today).
        const runtimeAdded = ['HOSTNAME', 'HOME', 'PATH', 'PWD', 'SHLVL', ...runtime.expected().addedEnv];
        const extra = Object.keys(vars).filter(
          (k) => ![...['A', 'B', 'EMPTY'], ...runtimeAdded].includes(k) && !runtime.runtimeEnv?.test(k),
        );
        expect(extra).toEqual([]);
        expect(r.stdout.text).not.toContain('must-not-leak');
      });

      it('honours the working dir, and "." means the image default', async () => {
        expect((await run(['pwd'], { workingDir: '/tmp' })).stdout.text).toBe('/tmp\n');
        expect((await run(['pwd'], { workingDir: '.' })).stdout.text).toBe('/\n');
      });

      it.runIf(runtime.limitsSeen === 'host-cgroup')(
        'limits CPU and memory in its cgroup (memory+swap = memory), raising tiny memory to the minimum',
        async () => {
          const r = await start(['sleep', '30'], { vcpus: 0.5, ramBytes: 64 * 1024 * 1024 });
          const at = (controller: string, file: string) =>
            readFile(join('/sys/fs/cgroup', controller, r.executor.cgroupId(), file), 'utf8').then((t) =>
              t.trim(),
            );
          expect(await at('cpu', 'cpu.cfs_quota_us')).toBe('50000');
          expect(await at('memory', 'memory.limit_in_bytes')).toBe(String(64 * 1024 * 1024));
          const memsw = await at('memory', 'memory.memsw.limit_in_bytes').catch(() => undefined);
          if (memsw !== undefined) expect(memsw).toBe(String(64 * 1024 * 1024));
          await r.executor.stop();
          const tiny = await start(['sleep', '30'], { ramBytes: 1000 });
          const limit = await readFile(
            join('/sys/fs/cgroup/memory', tiny.executor.cgroupId(), 'memory.limit_in_bytes'),
            'utf8',
          );
          expect(Number(limit.trim())).toBeGreaterThanOrEqual(6 * 1024 * 1024);
          await tiny.executor.stop();
        },
      );

      it.runIf(runtime.limitsSeen === 'inside')(
        'limits CPU and memory (memory+swap = memory), raising tiny memory to the minimum',
        async () => {
          const r = await run(
            [
              'sh',
              '-c',
              'cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes 2>/dev/null',
            ],
            { vcpus: 0.5, ramBytes: 64 * 1024 * 1024 },
          );
          const [quota, mem, memsw] = r.stdout.text.trim().split('\n');
          expect(quota).toBe('50000');
          expect(mem).toBe(String(64 * 1024 * 1024));
          if (memsw !== undefined) expect(memsw).toBe(String(64 * 1024 * 1024));
          const tiny = await run(['cat', '/sys/fs/cgroup/memory/memory.limit_in_bytes'], { ramBytes: 1000 });
          expect(tiny.exitCode).toBe(0);
          expect(Number(tiny.stdout.text.trim())).toBeGreaterThanOrEqual(6 * 1024 * 1024);
        },
      );

      it.each([1, 4 * 1024 * 1024, 6 * 1024 * 1024])(
        'raises a RAM limit of %i bytes to the minimum, so that true exits 0',
        async (ramBytes) => {
          const r = await run(['true'], { ramBytes });
          expect(r.exitCode).toBe(0);
        },
      );

      it('fails clearly, without hanging, when the command does not exist (no init)', async () => {
        const e = executor();
        const loaded = await e.loadImage({
          image: TEST_IMAGE,
          tarballPath: testImageTarball(),
          pullPolicy: 'if-not-present',
        });
        await e.create(spec(['no-such-program', 'x'], { init: false }), loaded);
        await expect(e.start()).rejects.toThrow(/command not found.*no-such-program/);
      });

      it("under the init, a missing command exits with the runtime's code and stderr says why", async () => {
        const r = await run(['no-such-program', 'x']);
        expect(r.exitCode).toBe(runtime.expected().missingCommandExitCode);
        // tini (Docker's, and Podman's when the host has one) names the program; Podman's
        // catatonit, its fallback, says only "failed to exec pid1: No such file …" and exits 1.
        expect(r.stderr.text).toMatch(
          r.exitCode === 1 ? /failed to exec pid1: No such file or directory/ : /no-such-program/,
        );
      });
    });

    describe('output', () => {
      it('keeps stdout and stderr apart, byte for byte, without trailing newlines', async () => {
        const r = await run([
          'sh',
          '-c',
          'printf out1; printf err1 >&2; printf "\\nout2"; printf "err2\\n" >&2; printf "\\0\\001\\377" ',
        ]);
        expect(r.stdout.buffer).toEqual(Buffer.concat([Buffer.from('out1\nout2'), Buffer.from([0, 1, 255])]));
        expect(r.stderr.text).toBe('err1err2\n');
      });

      it('passes binary data intact', async () => {
        const r = await run([
          'sh',
          '-c',
          'head -c 3000000 /dev/urandom > /tmp/d; sha256sum /tmp/d | cut -d" " -f1 >&2; cat /tmp/d',
        ]);
        expect(r.stdout.buffer.length).toBe(3_000_000);
        expect(createHash('sha256').update(r.stdout.buffer).digest('hex')).toBe(r.stderr.text.trim());
      });

      it('respects a slow consumer and resolves wait() only after everything is written', async () => {
        const slow = new Sink(1);
        const r = await start(['sh', '-c', 'head -c 2000000 /dev/zero'], { stdout: slow });
        expect(await r.executor.wait()).toBe(0);
        expect(slow.buffer.length).toBe(2_000_000);
        // Without backpressure most of the output would wait in the sink's queue at once.
        expect(slow.maxQueued).toBeLessThan(1_000_000);
      });
    });

    describe('wait, stop and close', () => {
      it('rejects wait() when its signal aborts, and close() leaves nothing behind', async () => {
        const r = await start(['sleep', '30']);
        const controller = new AbortController();
        setTimeout(() => controller.abort(), 100);
        await expect(r.executor.wait(controller.signal)).rejects.toThrow(/aborted/);
        await r.executor.close();
        expect(await r.executor.pid()).toBe(0);
      });

      it('stops with SIGTERM first, and a program that traps it gets its grace to finish', async () => {
        // The handler takes a second, well inside the grace: an early SIGKILL would cut "bye".
        const r = await start([
          'sh',
          '-c',
          'trap "echo term; sleep 1; echo bye; exit 3" TERM; echo ready; while true; do sleep 0.1; done',
        ]);
        await waitFor(() => r.stdout.text.includes('ready'));
        await r.executor.stop({ graceMs: 10_000 });
        expect(await r.executor.wait()).toBe(3);
        expect(r.stdout.text).toBe('ready\nterm\nbye\n');
      });

      it('escalates to SIGKILL once the grace is over, not before', async () => {
        // The program sees SIGTERM (it says so) and carries on, so only SIGKILL ends it.
        const graceMs = 1_500;
        const r = await start([
          'sh',
          '-c',
          'trap "echo term" TERM; echo ready; while true; do sleep 0.1; done',
        ]);
        await waitFor(() => r.stdout.text.includes('ready'));
        const stopAt = performance.now();
        await r.executor.stop({ graceMs });
        expect(await r.executor.wait()).toBe(137);
        const tookMs = performance.now() - stopAt;
        expect(r.stdout.text).toBe('ready\nterm\n');
        // A little slack below: timers are rounded to whole milliseconds.
        expect(tookMs).toBeGreaterThanOrEqual(graceMs - 20);
        expect(tookMs).toBeLessThan(graceMs + 8_000);
      });

      it('stop is safe on a container that never started or already exited', async () => {
        const e = executor();
        const loaded = await e.loadImage({
          image: TEST_IMAGE,
          tarballPath: testImageTarball(),
          pullPolicy: 'if-not-present',
        });
        await e.stop({ graceMs: 100 });
        await e.create(spec(['true']), loaded);
        await e.stop();
        await e.start();
        expect(await e.wait()).toBe(0);
        await e.stop({ graceMs: 100 });
        await e.stop();
      });

      it('stop() on a container that already exited signals nothing, and wait() still gives its own exit and output', async () => {
        // The window of a shutdown that lands after the program's own exit, before wait() returned.
        const r = await start(['sh', '-c', 'echo all of it; exit 3']);
        await waitFor(async () => (await r.executor.pid()) === 0);
        expect(await r.executor.stop({ graceMs: 1_000 })).toEqual({ signalled: false });
        expect(await r.executor.stop()).toEqual({ signalled: false });
        expect(await r.executor.wait()).toBe(3);
        expect(r.stdout.text).toBe('all of it\n');
      });

      it('stop() on a running container says it signalled it', async () => {
        const r = await start(['sleep', '30']);
        expect(await r.executor.stop({ graceMs: 5_000 })).toEqual({ signalled: true });
        await r.executor.wait();
      });

      it('close() is idempotent and safe after a failed start', async () => {
        const e = executor();
        const loaded = await e.loadImage({
          image: TEST_IMAGE,
          tarballPath: testImageTarball(),
          pullPolicy: 'if-not-present',
        });
        await e.create(spec(['/missing'], { init: false }), loaded);
        await expect(e.start()).rejects.toThrow();
        await e.close();
        await expect(e.close()).resolves.toBeUndefined();
        expect(await e.pid()).toBe(0);
      });
    });

    describe('final usage', () => {
      it('after wait(), even a run of milliseconds has CPU seconds and peak memory', async () => {
        const r = await run(['true']);
        expect(r.exitCode).toBe(0);
        const usage = await r.executor.finalUsage();
        expect(usage.missing).toBeNull();
        expect(usage.cpuSeconds).toBeGreaterThan(0);
        expect(usage.peakMemoryBytes).toBeGreaterThan(0);
      });
    });

    describe('stdin', () => {
      it('streams stdin and closes it so the program sees EOF', async () => {
        const r = await run(['cat'], {
          stdin: Readable.from([Buffer.from('hello\n'), Buffer.from('world')]),
        });
        expect(r.exitCode).toBe(0);
        expect(r.stdout.text).toBe('hello\nworld');
      });

      it('streams 50 MB of stdin without holding it in memory', async () => {
        const total = 50 * 1024 * 1024;
        const chunk = Buffer.alloc(64 * 1024, 'x');
        const before = process.memoryUsage().rss;
        let peak = before;
        const input = Readable.from(
          (function* () {
            for (let sent = 0; sent < total; sent += chunk.length) {
              peak = Math.max(peak, process.memoryUsage().rss);
              yield chunk;
            }
          })(),
        );
        const r = await run(['wc', '-c'], { stdin: input });
        expect(r.exitCode).toBe(0);
        expect(Number(r.stdout.text.trim())).toBe(total);
        expect(peak - before).toBeLessThan(total / 2);
      });
    });

    describe('mounts', () => {
      it('keeps a read-only mount read-only and shows rw writes on the host', async () => {
        const ro = await tempDir();
        const rw = await tempDir();
        await writeFile(join(ro, 'input.txt'), 'from host\n');
        const r = await run(
          [
            'sh',
            '-c',
            'cat /in/input.txt; echo x > /in/new 2>/dev/null && echo WROTE-RO; echo result > /out/r.txt',
          ],
          {
            bindMounts: {
              '/in': { hostPath: ro, readOnly: true },
              '/out': { hostPath: rw, readOnly: false },
            },
          },
        );
        expect(r.exitCode).toBe(0);
        expect(r.stdout.text).toBe('from host\n');
        expect(await readFile(join(rw, 'r.txt'), 'utf8')).toBe('result\n');
      });
    });

    describe('network', () => {
      it('without network: only loopback, no default route, and no address', async () => {
        const r = await start(['sh', '-c', 'ip -o addr; echo ---; ip route; sleep 30']);
        await waitFor(() => r.stdout.text.includes('---'));
        const [addrs, routes] = r.stdout.text.split('---');
        // `ip -o addr` lines are "<n>: <interface> <family> <address> ...".
        const interfaces = new Set(
          addrs
            ?.trim()
            .split('\n')
            .map((l) => l.split(/\s+/)[1]),
        );
        expect([...interfaces]).toEqual(['lo']);
        expect(routes?.trim()).toBe('');
        await expect(r.executor.ipAddress()).rejects.toThrow(/no network/);
        await r.executor.stop();
      });

      it('with network: a default route, an address, and a reachable port the host also uses', async () => {
        const hostServer = createServer().listen(0, '0.0.0.0');
        await new Promise((resolve) => hostServer.once('listening', resolve));
        const address = hostServer.address();
        const port = typeof address === 'object' && address ? address.port : 0;
        try {
          const r = await start(
            ['sh', '-c', `ip route; echo ---; echo hello-from-container | nc -l -p ${port}`],
            { enableNetwork: true, networkMode: 'default' },
          );
          await waitFor(() => r.stdout.text.includes('---'));
          expect(r.stdout.text).toMatch(/^default via /m);
          const ip = await r.executor.ipAddress();
          expect(ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
          expect(ip).not.toMatch(/^127\./);
          const reply = await readFromPort(ip, port);
          expect(reply).toBe('hello-from-container\n');
          expect(await r.executor.wait()).toBe(0);
        } finally {
          hostServer.close();
        }
      });
    });

    describe('gateway and identity', () => {
      it('exec runs inside the running container as the given user', async () => {
        const ro = await tempDir();
        await writeFile(join(ro, 'secret.txt'), 'mounted\n');
        const r = await start(['sleep', '30'], { bindMounts: { '/data': { hostPath: ro, readOnly: true } } });
        expect(await r.executor.exec(['cat', '/data/secret.txt'])).toEqual({
          exitCode: 0,
          stdout: 'mounted\n',
          stderr: '',
        });
        expect(await r.executor.exec(['id', '-u'], { user: 'nobody' })).toEqual({
          exitCode: 0,
          stdout: '65534\n',
          stderr: '',
        });
        const failing = await r.executor.exec(['sh', '-c', 'echo oops >&2; exit 5']);
        expect(failing).toEqual({ exitCode: 5, stdout: '', stderr: 'oops\n' });
        expect((await r.executor.exec(['cat'], { stdin: 'piped' })).stdout).toBe('piped');
        await r.executor.stop();
        await r.executor.wait();
        await expect(r.executor.exec(['true'])).rejects.toThrow(/not running/);
      });

      it('reports cgroup, pid and runtime', async () => {
        const e = executor();
        expect(e.cgroupId()).toBe('');
        const loaded = await e.loadImage({
          image: TEST_IMAGE,
          tarballPath: testImageTarball(),
          pullPolicy: 'if-not-present',
        });
        await e.create(spec(['sleep', '30']), loaded);
        expect(e.cgroupId()).not.toBe('');
        await e.start();
        expect(await e.pid()).toBeGreaterThan(0);
        expect(await e.runtime()).toMatch(runtime.runtimeVersion);
        await e.stop();
        await e.wait();
        expect(await e.pid()).toBe(0);
      });
    });
  });
}

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function readFromPort(host: string, port: number): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await new Promise<string>((resolve, reject) => {
        const socket = connect(port, host);
        let data = '';
        socket.on('data', (c) => {
          data += c.toString();
        });
        socket.on('end', () => (data ? resolve(data) : reject(new Error('empty'))));
        socket.on('error', reject);
      });
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
