import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/worker.js';
import { RegistryCredentials } from '../../src/executors/registry-auth.js';
import { runtimeOptions } from '../../src/worker/runtime-options.js';

const config = loadConfig({
  HOME: '/home/u',
  STEVEDORE_QUEUE: 'q1',
  STEVEDORE_WORKER_ID: 'w1',
  STEVEDORE_STATE_DIR: '/var/lib/stevedore',
  STEVEDORE_PODMAN_SOCKET: '/run/p.sock',
  CUDA_VISIBLE_DEVICES: '0,1',
  STEVEDORE_PULL_TIMEOUT_MS: '60000',
});
const context = {
  deployment: 'a1b2c3d4e5f6',
  credentials: RegistryCredentials.none(),
  logger: pino({ level: 'silent' }),
};

describe('runtimeOptions: every runtime’s settings from one configuration', () => {
  it('Docker gets the engine settings and its owner: the queue, the worker and the deployment', () => {
    const { docker } = runtimeOptions(config, context);
    expect(docker).toMatchObject({
      owner: { queue: 'q1', workerId: 'w1', deployment: 'a1b2c3d4e5f6' },
      engineOutageMs: config.engineOutageMs,
      netns: config.netns,
      visibleDevices: { cuda: '0,1' },
      pull: { timeoutMs: 60_000, stallMs: config.pullStallMs },
    });
    expect(docker?.credentials).toBe(context.credentials);
  });

  it('Podman gets Docker’s settings, its socket, the PATH to find podman on, and the logger', () => {
    const { docker, podman } = runtimeOptions(config, context);
    expect(podman).toMatchObject({ ...docker, socket: '/run/p.sock', searchPath: config.searchPath });
    expect(podman?.logger).toBe(context.logger);
  });

  it('Apptainer gets its program settings, a state directory under the worker’s, credentials and devices', () => {
    const { singularity } = runtimeOptions(config, context);
    expect(singularity).toMatchObject({
      ...config.singularity,
      stateDir: '/var/lib/stevedore/singularity',
      visibleDevices: { cuda: '0,1' },
    });
    expect(singularity?.credentials).toBe(context.credentials);
  });

  it('settings passed in by code win over the configuration’s, per runtime', () => {
    const options = runtimeOptions(config, context, {
      docker: { engineOutageMs: 5 },
      podman: { socket: '/tmp/other.sock' },
      singularity: { stateDir: '/tmp/sing' },
    });
    expect(options.docker).toMatchObject({ engineOutageMs: 5, owner: { deployment: 'a1b2c3d4e5f6' } });
    expect(options.podman).toMatchObject({
      socket: '/tmp/other.sock',
      engineOutageMs: config.engineOutageMs,
    });
    expect(options.singularity?.stateDir).toBe('/tmp/sing');
  });
});
