import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { JobResult } from '../../src/jobs/result.js';
import type { RegistryAuth } from './registry.js';

/** The events.log of the attempt a result is of. */
export async function eventsOf(result: JobResult): Promise<string> {
  if (!result.stdout.path) throw new Error(`job ${result.jobId} has no log dir: give the worker one`);
  return readFile(join(dirname(result.stdout.path), 'events.log'), 'utf8');
}

/** The details of every `event` line of an events.log. */
export function eventLines(events: string, event: string): Record<string, unknown>[] {
  return events
    .split('\n')
    .map((line) => / (\S+)(?: (.*))?$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null && m[1] === event)
    .map((m) => (m[2] ? (JSON.parse(m[2]) as Record<string, unknown>) : {}));
}

/** Writes a Docker config.json with credentials for `host` (base64 "user:password"), as users keep them. */
export async function writeDockerConfig(
  path: string,
  entries: Record<string, RegistryAuth>,
): Promise<string> {
  const auths = Object.fromEntries(
    Object.entries(entries).map(([host, a]) => [
      host,
      { auth: Buffer.from(`${a.username}:${a.password}`).toString('base64') },
    ]),
  );
  await writeFile(path, JSON.stringify({ auths }, null, 2), { mode: 0o600 });
  return path;
}
