import { describe, expect, it } from 'vitest';
import { engineAddress, engineUnreachableMessage } from '../../src/executors/docker/engine-check.js';

const failure = (code: string, message: string): NodeJS.ErrnoException =>
  Object.assign(new Error(message), { code });

describe('the missing-engine line', () => {
  it('names the address as DOCKER_HOST would, socket or tcp', async () => {
    expect(await engineAddress({ socketPath: '/x/docker.sock' })).toBe('unix:///x/docker.sock');
    expect(
      await engineAddress({ socketPath: () => undefined, getSocketPath: async () => '/run/d.sock' }),
    ).toBe('unix:///run/d.sock');
    expect(await engineAddress({ protocol: 'http', host: '10.0.0.1', port: '2375' })).toBe(
      'tcp://10.0.0.1:2375',
    );
  });

  it('says what is missing and the command that starts it, as one line', () => {
    const missing = engineUnreachableMessage(
      'unix:///nope.sock',
      failure('ENOENT', 'connect ENOENT /nope.sock'),
      false,
    );
    expect(missing).toBe(
      'no Docker engine at unix:///nope.sock (connect ENOENT /nope.sock): start one with `sudo dockerd >/var/log/dockerd.log 2>&1 &` (not installed: `sudo apt-get install docker.io`), or set DOCKER_HOST to a running engine',
    );
    const stopped = engineUnreachableMessage(
      'unix:///var/run/docker.sock',
      failure('ECONNREFUSED', 'connect ECONNREFUSED /var/run/docker.sock'),
      true,
    );
    expect(stopped).toMatch(
      /^the Docker engine at unix:\/\/\/var\/run\/docker\.sock is not running .*`sudo systemctl start docker`/,
    );
    const denied = engineUnreachableMessage('unix:///s', failure('EACCES', 'connect EACCES /s'), false);
    expect(denied).toContain('join the docker group');
    const hung = engineUnreachableMessage('unix:///s', new Error('no answer within 5000 ms'), false);
    expect(hung).toContain('did not answer (no answer within 5000 ms)');
    for (const line of [missing, stopped, denied, hung]) expect(line).not.toContain('\n');
  });
});
