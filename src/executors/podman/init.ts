import { firstExecutable } from './service.js';

/**
 * Static tini builds, where Debian's `tini` and Docker's packages put them. Docker runs a job's
 * init from one of these (docker-init is tini), and a missing command then exits 127 with tini's
 * "exec … failed". Podman's own init, catatonit, exits 1 for it ("failed to exec pid1"), so
 * Podman jobs get tini too when the host has one. A dynamic `tini` would need a libc in the image.
 */
export const STATIC_INIT_CANDIDATES = [
  '/usr/bin/tini-static',
  '/usr/bin/docker-init',
  '/usr/libexec/docker/docker-init',
  '/usr/local/bin/tini-static',
];

/** The first executable candidate, or null (then Podman's catatonit is the init). */
export function findStaticInit(candidates: readonly string[] = STATIC_INIT_CANDIDATES): string | null {
  return firstExecutable(candidates);
}
