import type { JobSpec } from '../jobs/spec.js';
import type { FileIdentity, ResolvedPath } from './path-facts.js';

/**
 * What admission checked for one bind mount: the real path the policy allowed and the file it
 * named then. The run compares the runtime's view against it before create and after start,
 * since the engine binds the path long after admission (the whole image pull later).
 */
export interface MountPin {
  /** The path inside the container (the spec's key). */
  target: string;
  /** The real host path, every link resolved at admission; what the executor is given. */
  hostPath: string;
  identity: FileIdentity;
}

/** The pins of a spec's mounts (host paths as written) from admission's resolutions of them. */
export function mountPins(
  mounts: JobSpec['mounts'],
  resolved: ReadonlyMap<string, ResolvedPath>,
): MountPin[] {
  const pins: MountPin[] = [];
  for (const [target, mount] of Object.entries(mounts)) {
    const r = resolved.get(mount.hostPath);
    if (r?.fact.kind === 'real' && r.identity)
      pins.push({ target, hostPath: r.fact.path, identity: r.identity });
  }
  return pins;
}
