import { pino } from 'pino';
import { processEnv } from '../config/env.js';
import type { Overrides, SettingName } from '../config/settings.js';
import { loadConfig } from '../config/worker.js';
import { startWorker } from '../worker/worker.js';
import { parse } from './options.js';
import { WORKER_HELP } from './usage.js';

const WORKER_OPTIONS = {
  'redis-url': { type: 'string' },
  'redis-tls-ca': { type: 'string' },
  'redis-tls-cert': { type: 'string' },
  'redis-tls-key': { type: 'string' },
  queue: { type: 'string' },
  prefix: { type: 'string' },
  concurrency: { type: 'string' },
  runtime: { type: 'string' },
  'podman-socket': { type: 'string' },
  'log-dir': { type: 'string' },
  'state-dir': { type: 'string' },
  'lock-duration-ms': { type: 'string' },
  'shutdown-grace-ms': { type: 'string' },
  'engine-outage-ms': { type: 'string' },
  'log-level': { type: 'string' },
  'on-shutdown': { type: 'string' },
  'log-driver': { type: 'string' },
  netns: { type: 'string' },
  'keep-finished': { type: 'string' },
  'registry-auth': { type: 'string' },
  'pull-timeout-ms': { type: 'string' },
  'pull-stall-ms': { type: 'string' },
  'trusted-keys': { type: 'string' },
  policy: { type: 'string' },
  http: { type: 'string' },
  gateway: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Flag name → the environment variable it stands for. */
const FLAG_ENV: Record<string, SettingName> = {
  'redis-url': 'REDIS_URL',
  'redis-tls-ca': 'STEVEDORE_REDIS_TLS_CA',
  'redis-tls-cert': 'STEVEDORE_REDIS_TLS_CERT',
  'redis-tls-key': 'STEVEDORE_REDIS_TLS_KEY',
  queue: 'STEVEDORE_QUEUE',
  prefix: 'STEVEDORE_PREFIX',
  concurrency: 'STEVEDORE_CONCURRENCY',
  runtime: 'STEVEDORE_RUNTIME',
  'podman-socket': 'STEVEDORE_PODMAN_SOCKET',
  'log-dir': 'STEVEDORE_LOG_DIR',
  'state-dir': 'STEVEDORE_STATE_DIR',
  'lock-duration-ms': 'STEVEDORE_LOCK_DURATION_MS',
  'shutdown-grace-ms': 'STEVEDORE_SHUTDOWN_GRACE_MS',
  'engine-outage-ms': 'STEVEDORE_ENGINE_OUTAGE_MS',
  'log-level': 'LOG_LEVEL',
  'on-shutdown': 'STEVEDORE_ON_SHUTDOWN',
  'log-driver': 'STEVEDORE_LOG_DRIVER',
  netns: 'STEVEDORE_NETNS',
  'keep-finished': 'STEVEDORE_KEEP_FINISHED',
  'registry-auth': 'STEVEDORE_REGISTRY_AUTH',
  'pull-timeout-ms': 'STEVEDORE_PULL_TIMEOUT_MS',
  'pull-stall-ms': 'STEVEDORE_PULL_STALL_MS',
  'trusted-keys': 'STEVEDORE_TRUSTED_KEYS',
  policy: 'STEVEDORE_POLICY',
  http: 'STEVEDORE_HTTP',
  gateway: 'STEVEDORE_GATEWAY',
};

export async function workerCommand(args: string[]): Promise<number> {
  const { values } = parse(args, WORKER_OPTIONS);
  if (values.help) {
    console.log(WORKER_HELP);
    return 0;
  }
  const overrides: Overrides = {};
  for (const [flag, variable] of Object.entries(FLAG_ENV)) {
    const value = values[flag as keyof typeof values];
    if (typeof value === 'string') overrides[variable] = value;
  }
  const config = loadConfig(processEnv(), overrides);
  const logger = pino({ level: config.logLevel });
  // One handler for the process's whole life. A signal while the worker starts (a compose stop
  // right after up) is held until it has started, then closes it as usual. The handler is never
  // swapped: removing a signal's last listener restores the default action (the process dies at
  // once, no cleanup), so a signal that arrived between an off() and the next on() killed the
  // worker mid-start-up (seen: embedded-redis.test.ts, SIGTERM right after "worker started").
  let early: NodeJS.Signals | undefined;
  let shutdown: ((signal: NodeJS.Signals) => void) | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (shutdown) shutdown(signal);
    else early ??= signal;
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // Loaded only when asked for: a worker without STEVEDORE_HTTP carries no prom-client.
  const endpoint = config.http
    ? await (await import('../server/worker-endpoint.js')).startWorkerEndpoint(config.http, logger)
    : undefined;
  // Loaded only when asked for, as the endpoint is.
  const serveGateway = config.gateway ? (await import('../gateway/server.js')).startGatewayServer : undefined;
  const handle = await startWorker(config, { logger, events: endpoint?.events, serveGateway }).catch(
    async (error: unknown) => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      await endpoint?.close();
      throw error;
    },
  );
  endpoint?.attach(handle);
  return new Promise<number>((resolve) => {
    let signals = 0;
    shutdown = (signal) => {
      signals += 1;
      if (signals > 1) {
        logger.warn({ signal }, 'second signal: exiting at once');
        process.exit(130);
      }
      logger.info({ signal, running: handle.running() }, 'shutting down');
      // The endpoint outlives the close, so /readyz says "closing" to the probes meanwhile.
      handle
        .close()
        .finally(() => endpoint?.close())
        .then(
          () => resolve(0),
          (error: unknown) => {
            logger.error({ err: error }, 'shutdown failed');
            resolve(1);
          },
        );
    };
    if (early) shutdown(early);
  });
}
