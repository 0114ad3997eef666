import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Keepalive } from '../jobs/gateway/keepalive.js';
import { DEFAULT_PREFIX, DEFAULT_QUEUE } from '../jobs/keys.js';
import { type Env, processEnv } from './env.js';
import { gatewayKeepalive } from './gateway.js';
import { checkRedisUrl, type RedisTlsFiles, redisTlsFiles } from './redis.js';
import { type RedisTopology, redisTopology as topologyOf } from './redis-topology.js';
import { type Overrides, settingReader } from './settings.js';

/**
 * A producer's settings: this file and what it imports stay free of the worker and the
 * executors (.dependency-cruiser.cjs), so a producer that reads them loads neither.
 */

/** Where a client command (submit, status, result, cancel, logs) finds Redis and the queue. */
export interface ClientConfig {
  /** Undefined when neither REDIS_URL nor an embedded worker's URL file is there. */
  redisUrl?: string;
  redisTls?: RedisTlsFiles;
  /** REDIS_SENTINELS… or REDIS_CLUSTER_NODES; set, `redisUrl` is not. */
  redisTopology?: RedisTopology;
  queue: string;
  prefix: string;
  stateDir: string;
  /** STEVEDORE_SIGNING_KEY: the producer's private key file; submit signs with it. */
  signingKeyFile?: string;
  /** STEVEDORE_GATEWAY_TLS_CA: the CA of the workers' gateway certificates (exec, shell, port-forward). */
  gatewayTlsCaFile?: string;
  /** STEVEDORE_GATEWAY_PING_MS and STEVEDORE_GATEWAY_PEER_TIMEOUT_MS, for exec, shell and port-forward sessions. */
  gatewayKeepalive: Keepalive;
}

/** Default state directory: $XDG_STATE_HOME/stevedore or ~/.local/state/stevedore. */
export function defaultStateDir(env: Env): string {
  const get = settingReader(env);
  return join(get('XDG_STATE_HOME') || join(get('HOME') || homedir(), '.local', 'state'), 'stevedore');
}

/** REDIS_URL (or a Sentinel or Cluster), else the URL an embedded-Redis worker on this host wrote to its state directory. */
export function loadClientConfig(
  env: Env = processEnv(),
  overrides: Overrides = {},
  readUrlFile: (stateDir: string) => string | undefined = () => undefined,
): ClientConfig {
  const get = settingReader(env, overrides);
  const stateDir = get('STEVEDORE_STATE_DIR') || defaultStateDir(env);
  const prefix = get('STEVEDORE_PREFIX') || DEFAULT_PREFIX;
  const redisTopology = topologyOf(get, prefix);
  const redisUrl = redisTopology ? undefined : get('REDIS_URL') || readUrlFile(stateDir);
  checkRedisUrl(redisUrl);
  return {
    redisUrl,
    redisTls: redisTlsFiles(get, redisUrl, redisTopology !== undefined),
    redisTopology,
    queue: get('STEVEDORE_QUEUE') || DEFAULT_QUEUE,
    prefix,
    stateDir,
    signingKeyFile: get('STEVEDORE_SIGNING_KEY') || undefined,
    gatewayTlsCaFile: get('STEVEDORE_GATEWAY_TLS_CA') || undefined,
    gatewayKeepalive: gatewayKeepalive(get),
  };
}
