import type { Workers } from './deployment.js';

/** When, as a share of finished jobs, the replica is killed and the rolling restart begins. */
const KILL_AT = 0.25;
const RESTART_AT = 0.5;
/** How often the share of finished jobs is read while waiting for those points. */
const POLL_MS = 250;

/** Resolves once `share()` has reached `at`. */
export async function untilShare(share: () => number, at: number): Promise<void> {
  while (share() < at) await new Promise((resolve) => setTimeout(resolve, POLL_MS));
}

/**
 * `docker kill`s one replica at a quarter of the results, then restarts each other replica in
 * turn at half (SIGTERM: the worker detaches its running jobs, which another one adopts), then
 * brings the killed one back. Returns what it did, for the report.
 */
export async function disturb(
  workers: Workers,
  share: () => number,
  say: (line: string) => void,
): Promise<string[]> {
  const actions: string[] = [];
  const note = (line: string) => {
    actions.push(line);
    say(line);
  };
  const replicas = await workers.replicas();
  if (replicas.length === 0) return actions;
  await untilShare(share, KILL_AT);
  const [victim, ...rest] = replicas;
  if (!victim) return actions;
  await victim.kill();
  note(`killed ${victim.name} at ${Math.round(share() * 100)}% finished`);
  await untilShare(share, RESTART_AT);
  for (const replica of rest) {
    await replica.restart();
    note(`restarted ${replica.name} (detach) at ${Math.round(share() * 100)}% finished`);
  }
  await workers.heal();
  note(`brought ${victim.name} back`);
  return actions;
}
