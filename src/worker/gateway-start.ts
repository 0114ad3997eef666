import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { ConfigError } from '../config/errors.js';
import type { GatewayConfig } from '../config/gateway.js';
import type { RedisConnection } from '../jobs/connection.js';
import { coerceError } from '../jobs/errors.js';
import type { QueueAddress } from '../jobs/keys.js';
import type { GatewayPolicy } from '../policy/policy.js';
import { type GatewayServe, JobGateways } from './gateway-jobs.js';
import type { TrustedKeys } from './trusted-keys.js';

/** The gateway's TLS files, read once at start; a file that cannot be read stops the worker, naming it. */
export async function readGatewayTls(
  config: GatewayConfig | undefined,
): Promise<{ key: Buffer; cert: Buffer } | undefined> {
  if (!config?.tls) return undefined;
  const read = async (variable: string, path: string) =>
    readFile(path).catch((error: unknown) => {
      throw new ConfigError(
        `${variable}=${path} cannot be read (${coerceError(error).message}): point it at a PEM file the worker can read`,
      );
    });
  return {
    cert: await read('STEVEDORE_GATEWAY_TLS_CERT', config.tls.cert),
    key: await read('STEVEDORE_GATEWAY_TLS_KEY', config.tls.key),
  };
}

/** A gateway setting without a server to start is a mistake to report before anything opens. */
export function checkGatewayServe(config: GatewayConfig | undefined, serve: GatewayServe | undefined): void {
  if (config && !serve)
    throw new ConfigError(
      'STEVEDORE_GATEWAY is set but this worker was started without a gateway server: `stevedore worker` starts one; code that calls startWorker passes `serveGateway: startGatewayServer` (from the package)',
    );
}

export interface WorkerGateway {
  jobs: JobGateways;
  close(): Promise<void>;
}

/** Starts the gateway server and the registry of running jobs' gateways it serves. */
export async function startWorkerGateway(options: {
  config: GatewayConfig;
  tls: { key: Buffer; cert: Buffer } | undefined;
  serve: GatewayServe;
  redis: RedisConnection;
  address: QueueAddress;
  workerId: string;
  lockDurationMs: number;
  policy: GatewayPolicy;
  trusted: TrustedKeys | undefined;
  logger: Logger;
}): Promise<WorkerGateway> {
  const { config, trusted } = options;
  const jobs = new JobGateways({
    redis: options.redis,
    address: options.address,
    workerId: options.workerId,
    advertise: { ...config.advertise, tls: options.tls !== undefined },
    ttlMs: options.lockDurationMs,
    logger: options.logger,
  });
  const server = await options.serve({
    listen: config.listen,
    tls: options.tls,
    jobs,
    policy: options.policy,
    trustedKey: trusted ? async (keyId) => (await trusted.current()).get(keyId) : undefined,
    audit: jobs,
    logger: options.logger,
    keepalive: config.keepalive,
  });
  options.logger.info(
    {
      advertise: `${config.advertise.host}:${config.advertise.port}`,
      exec: options.policy.exec,
      forward: options.policy.forward,
      signed: trusted !== undefined,
    },
    'gateway serves running jobs',
  );
  return { jobs, close: () => server.close() };
}
