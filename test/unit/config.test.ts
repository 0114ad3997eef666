import { describe, expect, it } from 'vitest';
import { loadClientConfig } from '../../src/config/client.js';
import { loadConfig } from '../../src/config/worker.js';

describe('worker configuration', () => {
  it('has defaults for everything but Redis (embedded when absent)', () => {
    const c = loadConfig({ HOME: '/home/u' });
    expect(c).toMatchObject({
      redisUrl: undefined,
      queue: 'stevedore',
      prefix: 'bull',
      runtime: 'docker',
      stateDir: '/home/u/.local/state/stevedore',
      logDir: '/home/u/.local/state/stevedore/logs',
      lockDurationMs: 30_000,
      shutdownGraceMs: 30_000,
      engineOutageMs: 30_000,
      logLevel: 'info',
      netns: 'reuse',
      // Unset: the runtime's own (Docker "local", Podman "k8s-file").
      logDriver: undefined,
      podmanSocket: '/run/podman/podman.sock',
      keepFinished: 1_000,
    });
    expect(c.concurrency).toBeGreaterThanOrEqual(1);
    // Limits come from the worker policy file (pidsLimit, maxOutputBytes), not the environment.
    expect(c.limits).toBeUndefined();
  });

  it('reads every variable, and flags win over the environment', () => {
    const c = loadConfig(
      {
        REDIS_URL: 'redis://r:6379',
        STEVEDORE_QUEUE: 'q',
        STEVEDORE_PREFIX: '{s}',
        STEVEDORE_CONCURRENCY: '3',
        STEVEDORE_RUNTIME: 'docker',
        STEVEDORE_LOG_DIR: '/logs',
        STEVEDORE_LOCK_DURATION_MS: '5000',
        STEVEDORE_SHUTDOWN_GRACE_MS: '0',
        STEVEDORE_ENGINE_OUTAGE_MS: '90000',
        STEVEDORE_NETNS: 'fresh',
        STEVEDORE_KEEP_FINISHED: '50',
        LOG_LEVEL: 'debug',
      },
      { STEVEDORE_CONCURRENCY: '8' },
    );
    expect(c).toMatchObject({
      redisUrl: 'redis://r:6379',
      queue: 'q',
      prefix: '{s}',
      concurrency: 8,
      logDir: '/logs',
      lockDurationMs: 5000,
      shutdownGraceMs: 0,
      engineOutageMs: 90_000,
      netns: 'fresh',
      keepFinished: 50,
      logLevel: 'debug',
    });
  });

  it("runs on podman with its socket: the one named (flag first), else the user's, else root's", () => {
    expect(loadConfig({ STEVEDORE_RUNTIME: 'podman', XDG_RUNTIME_DIR: '/run/user/1000' })).toMatchObject({
      runtime: 'podman',
      podmanSocket: '/run/user/1000/podman/podman.sock',
    });
    expect(
      loadConfig(
        { STEVEDORE_PODMAN_SOCKET: 'unix:///srv/p.sock', XDG_RUNTIME_DIR: '/run/user/1000' },
        { STEVEDORE_RUNTIME: 'podman', STEVEDORE_PODMAN_SOCKET: '/srv/flag.sock' },
      ),
    ).toMatchObject({ runtime: 'podman', podmanSocket: '/srv/flag.sock' });
    expect(loadConfig({ STEVEDORE_PODMAN_SOCKET: 'unix:///srv/p.sock' }).podmanSocket).toBe('/srv/p.sock');
  });

  it('takes the policy file from STEVEDORE_POLICY (the --policy flag wins), and none by default', () => {
    expect(loadConfig({}).policyPath).toBeUndefined();
    expect(loadConfig({ STEVEDORE_POLICY: '/etc/stevedore/policy.yaml' }).policyPath).toBe(
      '/etc/stevedore/policy.yaml',
    );
    expect(loadConfig({ STEVEDORE_POLICY: '/a.yaml' }, { STEVEDORE_POLICY: '/b.json' }).policyPath).toBe(
      '/b.json',
    );
    expect(loadConfig({ DOCKER_HOST: 'unix:///run/user/1/docker.sock' }).dockerHost).toBe(
      'unix:///run/user/1/docker.sock',
    );
  });

  it.each([
    [{ STEVEDORE_CONCURRENCY: '0' }, 'STEVEDORE_CONCURRENCY="0" is invalid: expected a whole number >= 1'],
    [{ STEVEDORE_CONCURRENCY: '2.5' }, 'STEVEDORE_CONCURRENCY="2.5" is invalid'],
    [
      { STEVEDORE_RUNTIME: 'rkt' },
      'STEVEDORE_RUNTIME="rkt" is invalid: expected "docker", "podman" or "singularity"',
    ],
    [{ REDIS_URL: 'localhost:6379' }, 'REDIS_URL="localhost:6379" is invalid'],
    [{ STEVEDORE_QUEUE: 'a:b' }, 'STEVEDORE_QUEUE="a:b" is invalid: must not contain ":"'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL="loud" is invalid'],
    [
      { STEVEDORE_KEEP_FINISHED: '0' },
      'STEVEDORE_KEEP_FINISHED="0" is invalid: expected a whole number >= 1',
    ],
    [{ STEVEDORE_NETNS: 'shared' }, 'STEVEDORE_NETNS="shared" is invalid: expected "reuse" or "fresh"'],
    [
      { STEVEDORE_ENGINE_OUTAGE_MS: '5' },
      'STEVEDORE_ENGINE_OUTAGE_MS="5" is invalid: expected a whole number >= 1000',
    ],
    [
      { STEVEDORE_LOCK_DURATION_MS: '10' },
      'STEVEDORE_LOCK_DURATION_MS="10" is invalid: expected a whole number >= 1000',
    ],
  ])('rejects %j naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });

  it('takes its id from STEVEDORE_WORKER_ID, else makes one from the host and the process', () => {
    expect(loadConfig({ STEVEDORE_WORKER_ID: 'w-1' }).workerId).toBe('w-1');
    expect(loadConfig({}).workerId).toMatch(new RegExp(`^.+-${process.pid}-[0-9a-z]{1,4}$`));
  });

  it('bounds SIF conversions and the SIF cache by default, and takes both from the environment', () => {
    expect(loadConfig({}).singularity).toMatchObject({
      convertTimeoutMs: 30 * 60_000,
      sifCacheBytes: 20 * 1024 ** 3,
    });
    expect(
      loadConfig({ STEVEDORE_SIF_CONVERT_TIMEOUT_MS: '90000', STEVEDORE_SIF_CACHE_BYTES: '1024' })
        .singularity,
    ).toMatchObject({ convertTimeoutMs: 90_000, sifCacheBytes: 1024 });
    expect(() => loadConfig({ STEVEDORE_SIF_CONVERT_TIMEOUT_MS: '10' })).toThrow(
      'STEVEDORE_SIF_CONVERT_TIMEOUT_MS="10" is invalid: expected a whole number >= 1000',
    );
    expect(loadConfig({})).toMatchObject({ pullTimeoutMs: 30 * 60_000, pullStallMs: 60_000 });
  });

  it('client commands find an embedded worker through its URL file', () => {
    const c = loadClientConfig({ HOME: '/h' }, {}, (dir) =>
      dir === '/h/.local/state/stevedore' ? 'redis://127.0.0.1:1' : undefined,
    );
    expect(c.redisUrl).toBe('redis://127.0.0.1:1');
    expect(loadClientConfig({ HOME: '/h', REDIS_URL: 'redis://x:2' }, {}, () => 'redis://y:3').redisUrl).toBe(
      'redis://x:2',
    );
  });
});
