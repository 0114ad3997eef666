import { describe, expect, it } from 'vitest';
import { loadClientConfig } from '../../src/config/client.js';
import { ConfigError } from '../../src/config/errors.js';
import { loadConfig } from '../../src/config/worker.js';
import { clusterPrefixProblem } from '../../src/jobs/keys.js';

describe('Redis Sentinel and Cluster settings', () => {
  it('reads the sentinels, the master name and the passwords, for the worker and for clients alike', () => {
    const env = {
      REDIS_SENTINELS: 'a.example:26379, 10.0.0.2:26380,[::1]:26381',
      REDIS_SENTINEL_NAME: 'mymaster',
      REDIS_SENTINEL_PASSWORD: 'sentinel-secret',
      REDIS_USERNAME: 'stevedore',
      REDIS_PASSWORD: 'data-secret',
    };
    const expected = {
      sentinels: [
        { host: 'a.example', port: 26379 },
        { host: '10.0.0.2', port: 26380 },
        { host: '::1', port: 26381 },
      ],
      name: 'mymaster',
      sentinelPassword: 'sentinel-secret',
      username: 'stevedore',
      password: 'data-secret',
    };
    expect(loadConfig(env).redisTopology).toEqual(expected);
    expect(loadConfig(env).redisUrl).toBeUndefined();
    const client = loadClientConfig({ ...env, HOME: '/h' }, {}, () => 'redis://embedded:1');
    expect(client.redisTopology).toEqual(expected);
    expect(client.redisUrl).toBeUndefined(); // an embedded worker's URL file does not win over the sentinels
  });

  it('reads the Cluster nodes when the prefix is hash-tagged, and refuses it otherwise, saying why', () => {
    expect(
      loadConfig({ REDIS_CLUSTER_NODES: 'n1:7000,n2:7001', STEVEDORE_PREFIX: '{stevedore}' }),
    ).toMatchObject({
      redisTopology: {
        clusterNodes: [
          { host: 'n1', port: 7000 },
          { host: 'n2', port: 7001 },
        ],
      },
      prefix: '{stevedore}',
    });
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'n1:7000' })).toThrow(
      'REDIS_CLUSTER_NODES is set, but the key prefix "bull" has no hash tag',
    );
    expect(() => loadClientConfig({ REDIS_CLUSTER_NODES: 'n1:7000', STEVEDORE_PREFIX: 'x{}' })).toThrow(
      ConfigError,
    );
  });

  it('allows one Redis only, and no sentinel or data-node setting without its topology', () => {
    expect(() =>
      loadConfig({ REDIS_URL: 'redis://h:1', REDIS_SENTINELS: 's:1', REDIS_SENTINEL_NAME: 'm' }),
    ).toThrow('REDIS_URL and REDIS_SENTINELS are set, but each names a whole Redis');
    expect(() =>
      loadConfig({ REDIS_SENTINELS: 's:1', REDIS_CLUSTER_NODES: 'n:1', STEVEDORE_PREFIX: '{s}' }),
    ).toThrow(/REDIS_SENTINELS and REDIS_CLUSTER_NODES/);
    expect(() => loadConfig({ REDIS_SENTINELS: 's:1' })).toThrow(
      'REDIS_SENTINELS is set without REDIS_SENTINEL_NAME',
    );
    expect(() => loadConfig({ REDIS_URL: 'redis://h:1', REDIS_PASSWORD: 'p' })).toThrow(
      /REDIS_PASSWORD is set without REDIS_SENTINELS or REDIS_CLUSTER_NODES.*redis:\/\/user:password@host:port/,
    );
    expect(() =>
      loadConfig({ REDIS_CLUSTER_NODES: 'n:1', STEVEDORE_PREFIX: '{s}', REDIS_SENTINEL_NAME: 'm' }),
    ).toThrow('REDIS_SENTINEL_NAME is set with REDIS_CLUSTER_NODES');
  });

  it('names the entry that is not host:port', () => {
    for (const bad of ['s', 's:0', 's:70000', 's:1,,t:2', 's:1 t:2']) {
      expect(() => loadConfig({ REDIS_SENTINELS: bad, REDIS_SENTINEL_NAME: 'm' }), bad).toThrow(
        /REDIS_SENTINELS=.* is invalid: .* is not host:port/,
      );
    }
  });

  it('TLS files turn TLS on for a Sentinel or Cluster, where no URL scheme can', () => {
    const env = { REDIS_SENTINELS: 's:1', REDIS_SENTINEL_NAME: 'm', STEVEDORE_REDIS_TLS_CA: '/ca.pem' };
    expect(loadConfig(env).redisTls).toEqual({ ca: '/ca.pem' });
  });

  it('knows a hash-tagged prefix: a non-empty {…} in the prefix itself', () => {
    for (const ok of ['{stevedore}', 'x{a}', '{a}b{c', '{{a}'])
      expect(clusterPrefixProblem(ok), ok).toBeUndefined();
    for (const bad of ['bull', '{}', '{stevedore', 'a}b{', '{}a}'])
      expect(clusterPrefixProblem(bad), bad).toBeDefined();
  });
});
