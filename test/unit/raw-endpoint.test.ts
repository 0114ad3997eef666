import Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import { type ModemSettings, rawEndpoint } from '../../src/executors/docker/attach/raw-attach.js';

/** The modem a dockerode client made from these options (no connection is opened). */
const modem = (options: Dockerode.DockerOptions): ModemSettings =>
  new Dockerode(options).modem as unknown as ModemSettings;

describe('rawEndpoint', () => {
  it('connects raw to a unix socket, given or found, or to a plain-HTTP host', async () => {
    expect(await rawEndpoint(modem({ socketPath: '/run/x/docker.sock' }))).toEqual({
      path: '/run/x/docker.sock',
    });
    // Without options, docker-modem looks for the socket through a function; it is resolved.
    const found = await rawEndpoint(modem({}));
    expect(found && 'path' in found && found.path).toMatch(/docker\.sock$/);
    expect(await rawEndpoint(modem({ host: '127.0.0.1', port: 2375 }))).toEqual({
      host: '127.0.0.1',
      port: 2375,
    });
    // DOCKER_HOST=tcp://... gives pathPrefix "/" and a string port.
    expect(await rawEndpoint({ host: '[::1]', port: '2375', protocol: 'http', pathPrefix: '/' })).toEqual({
      host: '::1',
      port: 2375,
    });
  });

  it('leaves TLS, ssh, auth, custom agents and prefixes to dockerode', async () => {
    expect(await rawEndpoint(modem({ host: 'engine', port: 2376, protocol: 'https' }))).toBeNull();
    expect(await rawEndpoint(modem({ host: 'engine', port: 22, protocol: 'ssh', username: 'u' }))).toBeNull();
    expect(await rawEndpoint({ host: 'engine', port: 2375, protocol: 'http', agent: {} })).toBeNull();
    expect(
      await rawEndpoint({ host: 'engine', port: 2375, protocol: 'http', pathPrefix: '/docker/' }),
    ).toBeNull();
    expect(await rawEndpoint({ host: 'http://engine', port: 2375, protocol: 'http' })).toBeNull();
  });
});
