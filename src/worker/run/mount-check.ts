import { readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ContainerExecutor } from '../../executors/executor.js';
import { MountChangedError, type Phase } from '../../jobs/errors.js';
import type { MountPin } from '../mount-pins.js';
import type { EventsLog } from '../output/events-log.js';
import { type FileIdentity, identityOf, resolveHostPath, sameFile } from '../path-facts.js';

/**
 * The symlink race on bind mounts: admission resolves and checks each host path, but the engine
 * binds it only at start, an image pull later. A job with a read-write mount above the path can
 * swap a checked directory for a link to `/` meanwhile. These checks bound that: the host path
 * again right before create, and what the container really got right after start.
 */

const TO_DO =
  'make sure no other job can replace this path (no read-write mount of a directory above it), then submit the job again';

const shown = (id: FileIdentity): string => `dev ${id.dev}, inode ${id.ino}`;

/** How the host path of `pin` no longer names what admission checked, or null. */
async function hostPathChange(pin: MountPin): Promise<string | null> {
  const now = await resolveHostPath(pin.hostPath);
  if (now.fact.kind === 'missing') return `${pin.hostPath} is gone`;
  if (now.fact.kind === 'unreadable') return `${pin.hostPath} cannot be resolved (${now.fact.code})`;
  if (now.fact.path !== pin.hostPath) return `${pin.hostPath} now resolves to ${now.fact.path}`;
  if (now.identity && !sameFile(now.identity, pin.identity))
    return `${pin.hostPath} is now another file (${shown(now.identity)}; admission checked ${shown(pin.identity)})`;
  return null;
}

/**
 * Rejects with MountChangedError, naming every mount, when a pinned host path no longer
 * resolves to itself (a link came in on the way) or names another file than at admission.
 */
export async function checkHostPaths(pins: readonly MountPin[], phase: Phase): Promise<void> {
  const changes: string[] = [];
  for (const pin of pins) {
    const change = await hostPathChange(pin);
    if (change) changes.push(`mounts.${pin.target}.hostPath ${change}`);
  }
  if (changes.length > 0)
    throw new MountChangedError(phase, `${changes.join('; ')}, since the job was admitted: ${TO_DO}`);
}

/**
 * `/proc/<pid>/root` when process `pid` runs in a mount namespace of its own (a container's),
 * else null: no process (0, or exited), one this worker cannot see (another PID namespace), or
 * one that shares the worker's mounts (a runtime's helper, not the container).
 */
async function containerRoot(pid: number): Promise<string | null> {
  if (pid <= 0) return null;
  try {
    const [theirs, ours] = await Promise.all([
      readlink(`/proc/${pid}/ns/mnt`),
      readlink('/proc/self/ns/mnt'),
    ]);
    return theirs === ours ? null : `/proc/${pid}/root`;
  } catch {
    return null;
  }
}

/**
 * After start: the file the container has at each pinned path is the one admission checked,
 * compared by device and inode through `/proc/<pid>/root` (the worker runs as root in the host's
 * PID namespace). Rejects with MountChangedError naming every mount that differs. Where the
 * container cannot be looked into (it exited already, or the worker cannot see its process), the
 * host paths are compared again instead, and the answer says so; null when the mounts were seen.
 */
export async function checkMounted(pins: readonly MountPin[], pid: number): Promise<string | null> {
  if (pins.length === 0) return null;
  const root = await containerRoot(pid);
  if (root) {
    const changes: string[] = [];
    for (const pin of pins) {
      let seen: FileIdentity | null = null;
      try {
        seen = await identityOf(join(root, pin.target));
      } catch {
        // nothing there: the process may have gone meanwhile (checked below)
      }
      if (seen && sameFile(seen, pin.identity)) continue;
      changes.push(
        `mounts.${pin.target}: the container has ${seen ? `another file (${shown(seen)})` : 'nothing'} at ${pin.target}, not ${pin.hostPath} (${shown(pin.identity)}) that admission checked`,
      );
    }
    if (changes.length === 0) return null;
    // Still the same container: what it has is what it got from the runtime.
    if ((await containerRoot(pid)) === root)
      throw new MountChangedError(
        'starting',
        `${changes.join('; ')}: the host path was replaced between admission and start, and the container was stopped: ${TO_DO}`,
      );
  }
  await checkHostPaths(pins, 'starting');
  return `the container's mounts could not be looked at (process ${pid} is not a container process this worker can see: it exited, or the worker runs in another PID namespace); their host paths were compared again instead`;
}

/**
 * The engine bound the mounts at start: what the container got must be what admission checked
 * (checkMounted). On a difference the container is stopped at once, before anything else, and
 * the run fails.
 */
export async function checkStartedMounts(
  executor: ContainerExecutor,
  pins: readonly MountPin[],
  events: Pick<EventsLog, 'write'>,
  log: Logger,
): Promise<void> {
  if (pins.length === 0) return;
  try {
    const pid = await executor.pid().catch((error: unknown) => {
      log.warn(
        { err: error },
        "the container's process could not be asked for; its mounts are checked on the host",
      );
      return 0;
    });
    const unchecked = await checkMounted(pins, pid);
    if (unchecked) {
      events.write('warning', { message: unchecked });
      log.warn(unchecked);
    }
  } catch (error) {
    if (error instanceof MountChangedError) {
      log.warn({ err: error }, 'a mount is not what admission checked: stopping the container');
      await executor.stop({ graceMs: 0 }).catch((stopError: unknown) => {
        log.warn({ err: stopError }, 'stopping the container with a swapped mount failed');
      });
    }
    throw error;
  }
}
