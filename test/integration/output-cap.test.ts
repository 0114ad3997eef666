import { execFileSync } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { testDocker } from '../helpers/docker.js';
import { busybox, until, untilRunning, useTestWorld } from '../helpers/stevedore.js';

const MiB = 1024 * 1024;

const eventsOf = (stdoutPath: string): Promise<string> =>
  readFile(join(dirname(stdoutPath), 'events.log'), 'utf8').catch(() => '');

/** The one `output-capped` line of `stream` in events.log, parsed; throws when there is none or more. */
function cappedLines(events: string, stream: string): Record<string, unknown>[] {
  return events
    .split('\n')
    .filter((l) => / output-capped \{/.test(l))
    .map((l) => JSON.parse(l.slice(l.indexOf('{'))) as Record<string, unknown>)
    .filter((d) => d.stream === stream);
}

describe('the per-stream output cap on disk', () => {
  const world = useTestWorld();

  it('keeps 10 MiB of 1 GB of stdout: counted, not written; the job is not stopped for it', async () => {
    // The worker's own path is under test; `none` spares the engine a copy of the gigabyte.
    await world.h.worker({ logDriver: 'none', limits: { pidsLimit: 4096, maxOutputBytes: 10 * MiB } });
    const client = world.h.client();
    const { id } = await client.submit(
      busybox(['sh', '-c', 'head -c 1000000000 /dev/zero; echo small >&2; echo end-of-run']),
    );
    const result = await client.waitForResult(id, { timeoutMs: 120_000 });
    expect(result).toMatchObject({ state: 'Complete', reason: 'exited', exitCode: 0 });
    expect(result.stdout).toMatchObject({ bytes: 1_000_000_011, keptBytes: 10 * MiB });
    // The tail is the end of the whole stream, past the cap.
    expect(result.stdout.tail.endsWith('end-of-run\n')).toBe(true);
    expect(result.stderr).toMatchObject({ bytes: 6, keptBytes: 6, tail: 'small\n' });
    const path = result.stdout.path as string;
    expect((await stat(path)).size).toBe(10 * MiB);
    const file = await readFile(path);
    expect(file.every((b) => b === 0)).toBe(true);
    const events = await eventsOf(path);
    expect(cappedLines(events, 'stdout'), events).toEqual([
      expect.objectContaining({ atByte: 10 * MiB, maxOutputBytes: 10 * MiB }),
    ]);
    expect(cappedLines(events, 'stderr')).toEqual([]);
  });

  it('an adopted run replays past what the file kept and still stops the file at the cap', async () => {
    const h = world.h;
    const cap = { pidsLimit: 4096, maxOutputBytes: 1000 };
    const logDir = (await h.config()).logDir;
    const first = await h.worker({ onShutdown: 'detach', logDriver: 'local', logDir, limits: cap });
    const client = h.client();
    // 600 bytes, then 1000 more while no worker is attached, then 10 after adoption, in whole
    // lines (the engine's log copy holds a partial line back); the test moves it on from
    // outside (docker exec), so nothing depends on timing.
    const script = [
      'yes a | head -c 600',
      'until [ -e /tmp/go ]; do sleep 0.05; done',
      'yes b | head -c 1000; touch /tmp/said',
      'until [ -e /tmp/end ]; do sleep 0.05; done',
      'yes c | head -c 10',
    ].join('; ');
    const { id } = await client.submit(busybox(['sh', '-c', script], { stopGraceSeconds: 0 }));
    await untilRunning(client, id);
    const [container] = await testDocker().listContainers({
      filters: { label: [`stevedore.queue=${h.queue}`, `stevedore.job-id=${id}`] },
    });
    const containerId = container?.Id as string;
    const stdout = join(logDir, h.queue, id, '1', 'stdout');
    await until(async () => (await stat(stdout).catch(() => null))?.size === 600);
    await first.close();
    expect(await client.getResult(id)).toBeNull();
    execFileSync('docker', [
      'exec',
      containerId,
      'sh',
      '-c',
      'touch /tmp/go; until [ -e /tmp/said ]; do sleep 0.05; done',
    ]);

    await h.worker({ logDriver: 'local', logDir, limits: cap });
    await until(async () => / adopted \{/.test(await eventsOf(stdout)));
    await until(async () => (await stat(stdout).catch(() => null))?.size === 1000);
    execFileSync('docker', ['exec', containerId, 'touch', '/tmp/end']);
    const result = await client.waitForResult(id, { timeoutMs: 30_000 });
    expect(result).toMatchObject({ state: 'Complete', exitCode: 0, adopted: true });
    expect(result.stdout).toMatchObject({ bytes: 1610, keptBytes: 1000 });
    expect(result.stdout.tail).toBe(`${'a\n'.repeat(300)}${'b\n'.repeat(500)}${'c\n'.repeat(5)}`);
    expect(await readFile(result.stdout.path as string, 'utf8')).toBe(
      `${'a\n'.repeat(300)}${'b\n'.repeat(200)}`,
    );
    const events = await eventsOf(stdout);
    expect(cappedLines(events, 'stdout'), events).toEqual([expect.objectContaining({ atByte: 1000 })]);
  });
});
