import { type ChildProcess, spawn } from 'node:child_process';
import { renameSync, symlinkSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { WorkerConfig } from '../../src/config/worker.js';
import type { RuntimeKind } from '../../src/executors/runtime.js';
import { MountChangedError } from '../../src/jobs/errors.js';
import type { JobResult } from '../../src/jobs/result.js';
import type { MountPin } from '../../src/worker/mount-pins.js';
import { WorkerEvents } from '../../src/worker/observer.js';
import { identityOf } from '../../src/worker/path-facts.js';
import { checkMounted } from '../../src/worker/run/mount-check.js';
import { podmanMissing } from '../helpers/podman.js';
import { stubRun } from '../helpers/run-harness.js';
import { testSingularityBin } from '../helpers/singularity.js';
import { busybox, testPolicy, useTestWorld, writePolicy } from '../helpers/stevedore.js';

// The symlink race on bind mounts (issue #22): admission resolves and checks a mount's host path,
// the engine binds it at start. A checked directory swapped for a link to a secret directory in
// between must never reach the job: it fails `invalid`, naming the mount, on every runtime.
const SECRET = 'TOP-SECRET-never-to-be-read';

const singularityBin = await testSingularityBin();
const sifCache = await mkdtemp(join(tmpdir(), 'stevedore-race-sif-'));
afterAll(() => rm(sifCache, { recursive: true, force: true }));

const runtimes: { kind: RuntimeKind; skip: string | null }[] = [
  { kind: 'docker', skip: null },
  { kind: 'podman', skip: podmanMissing() },
  {
    kind: 'singularity',
    skip: singularityBin ? null : 'neither apptainer nor singularity is installed',
  },
];

describe.each(runtimes)('a mount swapped for a symlink after admission, on $kind', ({ kind, skip }) => {
  if (skip) console.warn(`[skip] mount race on ${kind}: ${skip}`);
  let dir = '';
  // Registered before the world's hooks, so it runs after them (the worker, and its Podman
  // service with its socket in `dir`, are gone first).
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const world = useTestWorld();
  let data = '';
  let secret = '';

  beforeEach(async () => {
    swapped = 0;
    dir = await mkdtemp(join(tmpdir(), 'stevedore-race-'));
    data = join(dir, 'rw', 'data');
    secret = join(dir, 'secret');
    await mkdir(data, { recursive: true });
    await mkdir(secret);
    await writeFile(join(data, 'file'), 'checked-content\n');
    await writeFile(join(secret, 'file'), `${SECRET}\n`);
  });

  /** A worker on `kind` that may bind only under <dir>/rw (read-write): the secret is outside. */
  async function worker(events: WorkerEvents): Promise<void> {
    const overrides: Partial<WorkerConfig> = {
      runtime: kind,
      policyPath: await writePolicy(dir, {
        ...testPolicy(),
        mounts: [{ hostPath: join(dir, 'rw'), readWrite: true }],
      }),
    };
    if (kind === 'podman') overrides.podmanSocket = join(dir, 'podman.sock');
    if (kind === 'singularity') overrides.singularity = { bin: singularityBin as string, sifCache };
    await world.h.worker(overrides, { events });
  }

  /**
   * What another job with a read-write mount of <dir>/rw could do: the checked dir becomes a link.
   * Synchronous, so it is done before the event's emitter (the run) goes on.
   */
  let swapped = 0;
  function swap(): void {
    swapped += 1;
    if (swapped > 1) return;
    renameSync(data, `${data}.checked`);
    symlinkSync(secret, data);
  }

  /** Reads the mount twice: once at once, once after a few seconds (the check's time to act). */
  async function run(): Promise<JobResult> {
    const client = world.h.client();
    const { id } = await client.submit(
      busybox(['sh', '-c', 'cat /data/file; sleep 4; cat /data/file'], {
        runtime: kind,
        mounts: { '/data': { hostPath: data, readOnly: true } },
      }),
    );
    return client.waitForResult(id, { timeoutMs: 90_000 });
  }

  const everything = async (result: JobResult): Promise<string> => {
    const stdout = result.stdout.path ? await readFile(result.stdout.path, 'utf8').catch(() => '') : '';
    return `${result.stdout.tail}${result.stderr.tail}${stdout}`;
  };

  it.skipIf(skip !== null)(
    'without a swap, the job reads the checked directory, its mount seen in the container',
    async () => {
      await worker(new WorkerEvents());
      const result = await run();
      expect(result).toMatchObject({ state: 'Complete', exitCode: 0, error: null });
      expect(result.stdout.tail).toBe('checked-content\nchecked-content\n');
      // The check after start looked into the container (no fallback to the host path).
      const events = await readFile(join(dirname(result.stdout.path as string), 'events.log'), 'utf8');
      expect(events).not.toContain('could not be looked at');
    },
  );

  it.skipIf(skip !== null)(
    'swapped during the image load: refused before create, invalid, the secret never read',
    async () => {
      const events = new WorkerEvents();
      // Admission done, image not yet loaded: the listener runs before the run goes on.
      events.on('job-admitted', swap);
      await worker(events);
      const result = await run();
      expect(swapped).toBe(1);
      expect(result).toMatchObject({ state: 'Failed', reason: 'invalid', exitCode: null, containerId: null });
      expect(result.error?.phase).toBe('creating');
      expect(result.error?.message).toBe(
        `creating: mounts./data.hostPath ${data} now resolves to ${secret}, since the job was admitted: make sure no other job can replace this path (no read-write mount of a directory above it), then submit the job again`,
      );
      expect(await everything(result)).not.toContain(SECRET);
    },
  );

  it.skipIf(skip !== null)(
    'swapped between create and start: refused before start, invalid, the secret never read',
    async () => {
      const events = new WorkerEvents();
      // Created (the engine holds the checked path), not yet started (nothing bound yet).
      events.on('phase-ended', (e) => {
        if (e.phase === 'creating') swap();
      });
      await worker(events);
      const result = await run();
      expect(swapped).toBe(1);
      expect(result).toMatchObject({ state: 'Failed', reason: 'invalid', exitCode: null, startedAt: null });
      expect(result.error?.phase).toBe('starting');
      expect(result.error?.message).toBe(
        `starting: mounts./data.hostPath ${data} now resolves to ${secret}, since the job was admitted: make sure no other job can replace this path (no read-write mount of a directory above it), then submit the job again`,
      );
      expect(await everything(result)).not.toContain(SECRET);
    },
  );
});

// What is left between the last host check and the engine's bind is closed after start: the
// container's view is compared through /proc/<pid>/root. A process in a mount namespace of its
// own, with the secret bound over the checked path (what a runtime binding the swapped link
// does), stands in for the container of a StubExecutor; the run must stop it and fail invalid.
const asRoot = process.getuid?.() === 0;
describe.skipIf(!asRoot)('after start, a mount that is not what admission checked', () => {
  if (!asRoot) console.warn('[skip] the check after start reads /proc/<pid>/root: it needs root');
  let dir = '';
  let child: ChildProcess | undefined;
  afterEach(async () => {
    child?.kill('SIGKILL');
    child = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** `sleep` in a mount namespace of its own where `source` is bound at `target`. */
  async function containerWith(source: string, target: string): Promise<number> {
    const script = 'mount --bind "$1" "$2" && echo ready && exec sleep 60';
    const c = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', source, target], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = c;
    c.on('error', () => undefined); // the exit below says what went wrong
    await new Promise<void>((resolve, reject) => {
      let err = '';
      c.stderr?.on('data', (chunk: Buffer) => {
        err += chunk.toString();
      });
      c.stdout?.once('data', () => resolve());
      c.once('exit', (code) => reject(new Error(`unshare exited (${code}): ${err}`)));
    });
    return c.pid as number;
  }

  async function world() {
    dir = await mkdtemp(join(tmpdir(), 'stevedore-race-ns-'));
    const data = join(dir, 'data');
    const secret = join(dir, 'secret');
    await mkdir(data);
    await mkdir(secret);
    const pin: MountPin = { target: data, hostPath: data, identity: await identityOf(data) };
    return { data, secret, pin };
  }

  it('checkMounted names the mount when the container has another file, and passes the checked one', async () => {
    const { data, secret, pin } = await world();
    const pid = await containerWith(secret, data);
    await expect(checkMounted([pin], pid)).rejects.toThrow(MountChangedError);
    await expect(checkMounted([pin], pid)).rejects.toThrow(
      new RegExp(
        `^starting: mounts\\.${data}: the container has another file \\(dev \\d+, inode \\d+\\) at ${data}, not ${data}`,
      ),
    );
    // What the namespace really has there is the secret: pinned as that, it passes.
    expect(await checkMounted([{ ...pin, identity: await identityOf(secret) }], pid)).toBeNull();
    // No process to look into: the host path is compared again, and the answer says so.
    expect(await checkMounted([pin], 0)).toMatch(/could not be looked at/);
  });

  it('the run stops the container at once and fails invalid, naming the mount', async () => {
    const { data, secret, pin } = await world();
    const pid = await containerWith(secret, data);
    const r = stubRun(
      { mounts: { [data]: { hostPath: data, readOnly: true } } },
      { runsUntilExited: true, pid },
      { pins: [pin] },
    );
    const { result } = await r.run();
    expect(result).toMatchObject({ state: 'Failed', reason: 'invalid', exitCode: null });
    expect(result.error?.phase).toBe('starting');
    expect(result.error?.message).toContain(`mounts.${data}: the container has another file`);
    expect(r.executor.stopOptions).toEqual([{ graceMs: 0 }]);
  });
});
