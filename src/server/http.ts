import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { coerceError } from '../jobs/errors.js';
import type { HttpAddress } from '../worker/config.js';
import type { MetricsSource, WorkerMetrics } from './metrics.js';
import { readinessOf } from './readiness.js';

export interface HttpEndpoint {
  /** Where it listens (the port the OS chose for port 0). */
  readonly address: AddressInfo;
  /** The worker /readyz asks and the gauges read; until then /readyz says it is starting. */
  attach(worker: MetricsSource): void;
  close(): Promise<void>;
}

export interface HttpEndpointOptions {
  listen: HttpAddress;
  metrics: WorkerMetrics;
  logger: Logger;
}

/**
 * The worker's HTTP endpoint (STEVEDORE_HTTP): /metrics in Prometheus text format, /healthz
 * and /readyz. Started before the worker, so a port in use stops it before it takes a job.
 */
export async function startHttpEndpoint(options: HttpEndpointOptions): Promise<HttpEndpoint> {
  const { metrics, logger } = options;
  let worker: MetricsSource | undefined;
  let lastReady: string | undefined;

  const readyz = async (res: ServerResponse): Promise<void> => {
    // The probe is shared and cached (WorkerMetrics.probe): a flood of requests costs one probe
    // per PROBE_TTL_MS. Whether the worker takes jobs is read fresh, so closing shows at once.
    const verdict = readinessOf(worker ? { ...(await metrics.probe()), jobs: worker.whyNoJobs() } : null);
    // Logged when the answer changes, not at every probe of a kubelet.
    if (verdict.text !== lastReady) {
      if (verdict.ready) logger.info('readiness: ready');
      else logger.warn({ readiness: verdict.text }, 'readiness: not ready');
      lastReady = verdict.text;
    }
    send(res, verdict.ready ? 200 : 503, `${verdict.text}\n`);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'only GET and HEAD\n');
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      const text = await metrics.registry.metrics();
      return send(res, 200, text, metrics.registry.contentType);
    }
    // Answering at all shows the process is alive and its event loop turns.
    if (path === '/healthz') return send(res, 200, 'ok\n');
    if (path === '/readyz') return readyz(res);
    send(res, 404, 'not found: try /metrics, /healthz or /readyz\n');
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      logger.warn({ err: error, path: req.url }, 'http: request failed');
      if (!res.headersSent) send(res, 500, `${coerceError(error).message}\n`);
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `STEVEDORE_HTTP: cannot listen on ${options.listen.host}:${options.listen.port}: ${error.message}; choose another address or port`,
          { cause: error },
        ),
      ),
    );
    server.listen(options.listen.port, options.listen.host, resolve);
  });
  // Once listening, an error (accept failing: EMFILE) must not end the worker with it.
  server.on('error', (error) => logger.warn({ err: error }, 'http endpoint: server error'));
  const address = server.address() as AddressInfo;
  logger.info({ http: `${address.address}:${address.port}` }, 'http endpoint listening');
  return {
    address,
    attach: (w) => {
      worker = w;
      metrics.attach(w);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}
