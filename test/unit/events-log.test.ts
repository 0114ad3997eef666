import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EventsLog } from '../../src/worker/output/events-log.js';

const dir = await mkdtemp(join(tmpdir(), 'stevedore-events-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('EventsLog', () => {
  it('writes one timestamped line per event to the file and the live copy', async () => {
    const published: string[] = [];
    const path = join(dir, 'events.log');
    const events = new EventsLog(path, (line) => published.push(line.toString()));
    events.write('running', { containerId: 'abc' });
    events.write('done');
    await events.close();
    const lines = (await readFile(path, 'utf8')).split('\n').filter(Boolean);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z running \{"containerId":"abc"\}$/);
    expect(lines[1]).toMatch(/ done$/);
    expect(published.join('')).toBe(`${lines.join('\n')}\n`);
    expect(events.failure).toBeNull();
  });

  it('a file that fails (ENOSPC on /dev/full) does not throw: the failure is kept, the live copy gets every line', async () => {
    const published: string[] = [];
    const events = new EventsLog('/dev/full', (line) => published.push(line.toString()));
    for (let i = 0; i < 50; i++) events.write('tick', { i });
    await events.close();
    expect(events.failure?.message).toMatch(/ENOSPC/);
    expect(published).toHaveLength(50);
  });
});
