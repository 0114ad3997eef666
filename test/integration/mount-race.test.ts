import { renameSync, symlinkSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { RuntimeKind } from '../../src/executors/executor.js';
import type { JobResult } from '../../src/jobs/result.js';
import type { WorkerConfig } from '../../src/worker/config.js';
import { WorkerEvents } from '../../src/worker/observer.js';
import { podmanMissing } from '../helpers/podman.js';
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
    'swapped between create and start: the container is stopped at once, invalid, the secret never read',
    async () => {
      const events = new WorkerEvents();
      // Created (the engine holds the checked path), not yet started (nothing bound yet).
      events.on('phase-ended', (e) => {
        if (e.phase === 'creating') swap();
      });
      await worker(events);
      const result = await run();
      expect(swapped).toBe(1);
      expect(result).toMatchObject({ state: 'Failed', reason: 'invalid', exitCode: null });
      expect(result.error?.phase).toBe('starting');
      expect(result.error?.message).toMatch(
        new RegExp(
          `^starting: mounts\\./data: the container has another file \\(dev \\d+, inode \\d+\\) at /data, not ${data} \\(dev \\d+, inode \\d+\\) that admission checked: the host path was replaced between admission and start, and the container was stopped`,
        ),
      );
      expect(await everything(result)).not.toContain(SECRET);
      // Stopped well before the job's second read (4 s after its start).
      expect(result.phases.starting ?? 0).toBeLessThan(4_000);
    },
  );
});
