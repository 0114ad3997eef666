import type { ModemSettings } from './attach/raw-attach.js';

/** Where dockerode reaches the engine (the default socket, or DOCKER_HOST as docker-modem read it). */
export async function engineAddress(modem: ModemSettings): Promise<string> {
  if (modem.socketPath !== undefined) {
    const path = (await modem.getSocketPath?.()) ?? modem.socketPath;
    return `unix://${typeof path === 'string' ? path : '/var/run/docker.sock'}`;
  }
  // DOCKER_HOST=tcp://… is plain HTTP to docker-modem; say it as the user wrote it.
  const scheme = modem.protocol === 'http' || modem.protocol === undefined ? 'tcp' : String(modem.protocol);
  return `${scheme}://${String(modem.host)}:${String(modem.port)}`;
}

/**
 * The one line for an engine that did not answer: what is missing, and the command that fixes it.
 * `systemd`: the host runs systemd, so the engine is a service to start rather than a daemon to launch.
 */
export function engineUnreachableMessage(
  address: string,
  error: NodeJS.ErrnoException,
  systemd: boolean,
): string {
  const start = systemd ? '`sudo systemctl start docker`' : '`sudo dockerd >/var/log/dockerd.log 2>&1 &`';
  const said = `(${error.message})`;
  switch (error.code) {
    case 'ENOENT':
      return `no Docker engine at ${address} ${said}: start one with ${start} (not installed: \`sudo apt-get install docker.io\`), or set DOCKER_HOST to a running engine`;
    case 'ECONNREFUSED':
      return `the Docker engine at ${address} is not running ${said}: start it with ${start}, or set DOCKER_HOST to a running engine`;
    case 'EACCES':
      return `the Docker engine at ${address} does not let this user in ${said}: run as root, or join the docker group (\`sudo usermod -aG docker $USER\`, then log in again)`;
    default:
      return `the Docker engine at ${address} did not answer ${said}: check that dockerd runs (${start}), or set DOCKER_HOST to a running engine`;
  }
}
