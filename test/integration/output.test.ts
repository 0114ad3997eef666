import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keys } from '../../src/jobs/keys.js';
import { stevedore } from '../helpers/cli.js';
import { busybox, untilRunning, useTestWorld } from '../helpers/stevedore.js';

async function fileHash(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** sha256 of `yes WORD | head -c BYTES`, computed without holding it in memory. */
function yesHash(word: string, bytes: number): string {
  const hash = createHash('sha256');
  const block = Buffer.from(`${word}\n`.repeat(16384));
  let left = bytes;
  while (left > 0) {
    const n = Math.min(left, block.length);
    hash.update(block.subarray(0, n));
    left -= n;
  }
  return hash.digest('hex');
}

describe('output and accounting', () => {
  const world = useTestWorld();
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stevedore-output-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** The test's worker and a client. The worker's own output path is under test here: the engine's `local` driver (the default) stores each line as its own message, which makes 25 million 4-byte lines take minutes. */
  async function outputWorker() {
    await world.h.worker({ concurrency: 2, logDriver: 'none' });
    return world.h.client();
  }

  it('keeps 200 MB of interleaved stdout/stderr byte-exact in files, and Redis under its cap', async () => {
    const client = await outputWorker();
    const size = 100_000_000;
    const { id } = await client.submit(
      busybox(['sh', '-c', `yes out | head -c ${size} & yes err | head -c ${size} >&2 & wait`]),
    );
    const result = await client.waitForResult(id, { timeoutMs: 120_000 });
    expect(result).toMatchObject({ state: 'Complete', exitCode: 0 });
    expect(result.stdout).toMatchObject({ bytes: size, truncated: true });
    expect(result.stderr).toMatchObject({ bytes: size, truncated: true });
    expect(result.stdout.tail).toBe('out\n'.repeat(1024));
    expect(await fileHash(result.stdout.path as string)).toBe(yesHash('out', size));
    expect(await fileHash(result.stderr.path as string)).toBe(yesHash('err', size));
    const admin = new Redis(world.redis.url);
    try {
      for (const stream of ['stdout', 'stderr'] as const) {
        // SAMPLES 0 counts every node of the stream: the default samples five and extrapolates,
        // which misjudges a stream of full 63 KiB chunks and small ones by tens of KiB either way.
        const key = keys.output({ prefix: 'bull', queue: world.h.queue }, id, stream);
        const bytes = Number(await admin.memory('USAGE', key, 'SAMPLES', 0));
        expect(bytes).toBeGreaterThan(0);
        expect(bytes).toBeLessThan(1024 * 1024);
      }
    } finally {
      await admin.quit();
    }
    // The live copy holds the end of the output, with the dropped part marked.
    let text = '';
    for await (const chunk of client.logs(id)) text += chunk.toString();
    expect(text).toMatch(/^\[stevedore: \d+ earlier bytes not kept live/);
    expect(text.endsWith('out\nout\n')).toBe(true);
    expect(text.length).toBeLessThan(1024 * 1024);
  });

  it('passes binary output intact', async () => {
    const client = await outputWorker();
    const { id } = await client.submit(
      busybox(['sh', '-c', 'head -c 20000000 /dev/urandom | tee /out/copy.bin'], {
        mounts: { '/out': { hostPath: dir, readOnly: false } },
      }),
    );
    const result = await client.waitForResult(id, { timeoutMs: 60_000 });
    expect(result.stdout.bytes).toBe(20_000_000);
    expect(await fileHash(result.stdout.path as string)).toBe(await fileHash(join(dir, 'copy.bin')));
  });

  it('reports oom only when the kernel killed for memory', async () => {
    const client = await outputWorker();
    const { id } = await client.submit(
      busybox(['sh', '-c', 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived'], {
        resources: { ram: '16Mi' },
      }),
    );
    const result = await client.waitForResult(id, { timeoutMs: 60_000 });
    expect(result).toMatchObject({
      state: 'Complete',
      reason: 'oom',
      oomKilled: true,
      exitCode: 137,
      signal: 'SIGKILL',
    });
    expect(result.stdout.tail).toBe('');
  });

  it('records usage, shows it in progress, and warns in events.log past 90% of the memory limit', async () => {
    const client = await outputWorker();
    const { id } = await client.submit(
      busybox(
        [
          'sh',
          '-c',
          'head -c 62000000 /dev/zero > /dev/shm/fill; sleep 1.5; i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; rm /dev/shm/fill',
        ],
        { resources: { ram: '64Mi' }, env: { SECRET_VALUE: 'hunter2-do-not-log' } },
      ),
    );
    let sawUsage = false;
    for (let i = 0; i < 400 && !sawUsage; i++) {
      const progress = await client.getProgress(id);
      sawUsage = progress?.phase === 'running' && progress.usage !== undefined;
      if (!sawUsage) await new Promise((r) => setTimeout(r, 25));
    }
    expect(sawUsage).toBe(true);
    const result = await client.waitForResult(id, { timeoutMs: 60_000 });
    expect(result.exitCode).toBe(0);
    expect(result.usage?.cpuSeconds).toBeGreaterThan(0.05);
    expect(result.usage?.peakMemoryBytes).toBeGreaterThan(0.9 * 64 * 1024 * 1024);
    const events = await readFile(join(result.stdout.path as string, '..', 'events.log'), 'utf8');
    for (const phase of [
      'admitted',
      'loading-image',
      'creating',
      'starting',
      'running',
      'finalizing',
      'done',
    ]) {
      expect(events).toMatch(new RegExp(`^\\S+Z ${phase}\\b`, 'm'));
    }
    expect(events).toMatch(/^\S+Z runtime \{"runtime":"docker /m);
    expect(events).toMatch(/^\S+Z warning \{"message":"memory at \d+% of its limit/m);
    expect(events).toContain('"envNames":["SECRET_VALUE"]');
    expect(events).not.toContain('hunter2');
    // A finished job's live events keep how it ended; events.log (above) has the warning.
    let live = '';
    for await (const chunk of client.logs(id, { stream: 'events' })) live += chunk.toString();
    expect(live).toMatch(/ done\n$/);
  });

  it('`stevedore logs -f` in another process sees lines while the job runs and ends when it ends', async () => {
    // The job goes on only once the follower has seen its first line, so a follower that starts
    // slowly on a loaded machine still meets a running job.
    const sync = await mkdtemp(join(tmpdir(), 'stevedore-follow-'));
    const client = await outputWorker();
    const { id } = await client.submit(
      busybox(
        [
          'sh',
          '-c',
          'until [ -e /sync/go ]; do echo waiting; sleep 0.1; done; for i in 1 2 3 4 5 6 7 8; do echo line-$i; sleep 0.1; done',
        ],
        { mounts: { '/sync': { hostPath: sync } } },
      ),
    );
    await untilRunning(client, id);
    const follower = stevedore(['logs', id, '-f'], {
      env: { REDIS_URL: world.redis.url, STEVEDORE_QUEUE: world.h.queue },
    });
    let seenWhileRunning = false;
    follower.stdout?.once('data', () => {
      seenWhileRunning = true;
      void writeFile(join(sync, 'go'), '');
    });
    try {
      const done = await follower;
      const result = await client.getResult(id);
      expect(seenWhileRunning).toBe(true);
      expect(done.exitCode).toBe(0);
      expect(done.stdout).toMatch(
        /^(waiting\n)+line-1\nline-2\nline-3\nline-4\nline-5\nline-6\nline-7\nline-8$/,
      );
      expect(`${done.stdout}\n`).toBe(await readFile(result?.stdout.path as string, 'utf8'));
    } finally {
      await rm(sync, { recursive: true, force: true });
    }
  });

  // A 1 MiB tmpfs as the log dir needs root (mount); these machines and CI run tests as root.
  const canMount = process.getuid?.() === 0;
  if (!canMount) console.warn('[skip] full-disk output test: mounting a small tmpfs needs root');
  it.skipIf(!canMount)(
    'a full disk under the log dir: the job completes, the result says what the file lacks, the worker lives on',
    async () => {
      const logDir = await mkdtemp(join(tmpdir(), 'stevedore-full-'));
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', logDir]);
      const { h } = world;
      try {
        await h.worker({ logDir });
        const client = h.client();
        const { id } = await client.submit(busybox(['sh', '-c', 'yes out | head -c 5000000']));
        const result = await client.waitForResult(id, { timeoutMs: 60_000 });
        expect(result).toMatchObject({ state: 'Complete', exitCode: 0 });
        expect(result.stdout.bytes).toBe(5_000_000);
        expect(result.stdout.tail.endsWith('out\nout\n')).toBe(true);
        expect(result.error?.message).toMatch(
          /output file .*stdout holds only the first \d+ of 5000000 bytes: ENOSPC/,
        );
        // The worker is still there: with room again, the next job runs and keeps its output.
        await rm(result.stdout.path as string);
        const next = await client.waitForResult((await client.submit(busybox(['echo', 'ok']))).id, {
          timeoutMs: 60_000,
        });
        expect(next).toMatchObject({ state: 'Complete', exitCode: 0, error: null });
        expect(await readFile(next.stdout.path as string, 'utf8')).toBe('ok\n');
      } finally {
        await h.close(); // before the unmount: its worker writes under the log dir
        execFileSync('umount', [logDir]);
        await rm(logDir, { recursive: true, force: true });
      }
    },
  );
});
