/** Where a root Podman service listens by default (podman-system-service(1)). */
export const ROOT_PODMAN_SOCKET = '/run/podman/podman.sock';

/**
 * The socket of the Podman service a worker uses: the one named, else the user's
 * (`$XDG_RUNTIME_DIR/podman/podman.sock`, rootless Podman's place), else root's. Pure.
 */
export function podmanSocketPath(named: string | undefined, xdgRuntimeDir: string | undefined): string {
  if (named) return named.startsWith('unix://') ? named.slice('unix://'.length) : named;
  if (xdgRuntimeDir) return `${xdgRuntimeDir.replace(/\/+$/, '')}/podman/podman.sock`;
  return ROOT_PODMAN_SOCKET;
}

/** The one line for a Podman service that does not answer: what is missing, and what to do. */
export function podmanUnreachableMessage(
  socket: string,
  error: NodeJS.ErrnoException,
  binary: string | null,
): string {
  const said = `(${error.message})`;
  const start = `\`podman system service --time=0 unix://${socket} &\``;
  if (binary === null) {
    return `no Podman service at unix://${socket} ${said} and no podman program on PATH to start one: install it (\`sudo apt-get install podman\`), or set STEVEDORE_PODMAN_SOCKET to a running service`;
  }
  switch (error.code) {
    case 'EACCES':
      return `the Podman service at unix://${socket} does not let this user in ${said}: run the worker as the service's user, or point STEVEDORE_PODMAN_SOCKET at your own (rootless: ${start})`;
    default:
      return `the Podman service at unix://${socket} did not answer ${said}: start it with ${start}, or set STEVEDORE_PODMAN_SOCKET to a running service`;
  }
}

/**
 * Why a worker must not run jobs on this service, or null. Rootless Podman on cgroup v1 ignores
 * every resource limit ("Resource limits are not supported and ignored on cgroups V1 rootless
 * systems"): memory, CPU and the process limit that stops a fork bomb would all be lies.
 */
export function rootlessRefusal(
  /** What the service's libpod/info said (PodmanRuntime.engineInfo). */
  facts: { rootless?: boolean; cgroups: { version: 1 | 2 } },
  socket: string,
): string | null {
  if (facts.rootless !== true || facts.cgroups.version !== 1) return null;
  return `the Podman service at unix://${socket} is rootless on a cgroup v1 host, where Podman ignores memory, CPU and process limits: use root's service (STEVEDORE_PODMAN_SOCKET=/run/podman/podman.sock, the worker as root), or a host with cgroup v2 and delegated controllers for rootless Podman`;
}
