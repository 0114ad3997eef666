import type { ClusterTarget, HostPort, SentinelTarget } from '../jobs/connection.js';
import { clusterPrefixProblem } from '../jobs/keys.js';
import { ConfigError } from './errors.js';
import type { SettingName, SettingReader } from './settings.js';

/** Redis through Sentinel or as a Cluster, from REDIS_SENTINELS… or REDIS_CLUSTER_NODES. */
export type RedisTopology = SentinelTarget | ClusterTarget;

/** The settings that each name a Redis; at most one may be set. */
const WHERE: readonly SettingName[] = ['REDIS_URL', 'REDIS_SENTINELS', 'REDIS_CLUSTER_NODES'];

/** `host:port,…` as written in `name`; a ConfigError names the entry that is not one. */
function hostPorts(name: SettingName, value: string): HostPort[] {
  return value.split(',').map((entry) => {
    const match = /^\s*(\[[^\]]+\]|[^\s:]+):(\d{1,5})\s*$/.exec(entry);
    const port = Number(match?.[2]);
    if (!match?.[1] || !Number.isInteger(port) || port < 1 || port > 65_535) {
      throw new ConfigError(
        `${name}=${JSON.stringify(value)} is invalid: ${JSON.stringify(entry.trim())} is not host:port (expected host:port,host:port,…)`,
      );
    }
    return { host: match[1].replace(/^\[|\]$/g, ''), port };
  });
}

/**
 * The Sentinel or Cluster named by the settings, undefined when neither is (REDIS_URL or the
 * embedded Redis then). The data nodes' ACL user and password come from REDIS_USERNAME and
 * REDIS_PASSWORD (REDIS_URL carries its own); with a Cluster, `prefix` must hold a hash tag.
 */
export function redisTopology(get: SettingReader, prefix: string): RedisTopology | undefined {
  const named = WHERE.filter((name) => get(name));
  if (named.length > 1) {
    throw new ConfigError(
      `${named.join(' and ')} are set, but each names a whole Redis: set exactly one of REDIS_URL (one server), REDIS_SENTINELS (Redis Sentinel) or REDIS_CLUSTER_NODES (Redis Cluster)`,
    );
  }
  const credentials = {
    username: get('REDIS_USERNAME') || undefined,
    password: get('REDIS_PASSWORD') || undefined,
  };
  if (named[0] === undefined || named[0] === 'REDIS_URL') {
    const stray = (
      ['REDIS_USERNAME', 'REDIS_PASSWORD', 'REDIS_SENTINEL_NAME', 'REDIS_SENTINEL_PASSWORD'] as const
    ).filter((name) => get(name));
    if (stray.length > 0) {
      throw new ConfigError(
        `${stray.join(', ')} ${stray.length > 1 ? 'are' : 'is'} set without REDIS_SENTINELS or REDIS_CLUSTER_NODES: they serve only those (a REDIS_URL carries its own user and password: redis://user:password@host:port)`,
      );
    }
    return undefined;
  }
  if (named[0] === 'REDIS_SENTINELS') {
    const name = get('REDIS_SENTINEL_NAME');
    if (!name) {
      throw new ConfigError(
        'REDIS_SENTINELS is set without REDIS_SENTINEL_NAME: set it to the master name the sentinels monitor (`sentinel monitor <name> …` in their configuration)',
      );
    }
    const sentinelPassword = get('REDIS_SENTINEL_PASSWORD') || undefined;
    return {
      sentinels: hostPorts('REDIS_SENTINELS', get('REDIS_SENTINELS') ?? ''),
      name,
      sentinelPassword,
      ...credentials,
    };
  }
  const problem = clusterPrefixProblem(prefix);
  if (problem) throw new ConfigError(`REDIS_CLUSTER_NODES is set, but ${problem}`);
  for (const name of ['REDIS_SENTINEL_NAME', 'REDIS_SENTINEL_PASSWORD'] as const) {
    if (get(name))
      throw new ConfigError(
        `${name} is set with REDIS_CLUSTER_NODES: a Redis Cluster has no sentinels; unset it`,
      );
  }
  return { clusterNodes: hostPorts('REDIS_CLUSTER_NODES', get('REDIS_CLUSTER_NODES') ?? ''), ...credentials };
}
