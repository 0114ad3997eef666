import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue } from 'bullmq';
import type { Logger } from 'pino';
import { StevedoreClient } from '../jobs/client.js';
import { connect, type RedisTarget, type RedisTls, throttled } from '../jobs/connection.js';
import { DEFAULT_PREFIX, DEFAULT_QUEUE, type QueueAddress } from '../jobs/keys.js';
import { listWorkers } from '../jobs/workers.js';
import { afterTokenLocation, checkAccess, isLoopback, requestUrl, sameOrigin, tokenCookie } from './auth.js';
import { redirect, send } from './respond.js';
import { answerError, type Request, routes } from './routes.js';
import { checkDashboardAccess, type ListenAddress } from './settings.js';
import { DashboardStore } from './store.js';

export interface DashboardOptions {
  listen: ListenAddress;
  /** STEVEDORE_DASHBOARD_TOKEN; required on any address but loopback. */
  token?: string;
  redis: RedisTarget;
  tls?: RedisTls;
  queue?: string;
  prefix?: string;
  logger: Logger;
}

export interface Dashboard {
  readonly address: AddressInfo;
  /** The URL to open (without the token). */
  readonly url: string;
  close(): Promise<void>;
}

/** The Host header's name, without its port. */
function hostName(host: string | undefined): string {
  const h = host ?? '';
  return h.startsWith('[') ? h.slice(0, h.indexOf(']') + 1) : (h.split(':')[0] ?? '');
}

/**
 * `stevedore dashboard`: server-rendered pages over the queue's Redis. Refuses an address other
 * than loopback without a token; with a token, every request must carry it.
 */
export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const token = checkDashboardAccess(options.listen, options.token);
  const { logger } = options;
  const address: QueueAddress = {
    queue: options.queue ?? DEFAULT_QUEUE,
    prefix: options.prefix ?? DEFAULT_PREFIX,
  };
  const onError = throttled((error) => logger.warn({ err: error }, 'dashboard: Redis connection error'));
  const redis = connect(options.redis, onError, options.tls);
  const queue = new Queue(address.queue, { connection: redis, prefix: address.prefix });
  queue.on('error', onError);
  const client = new StevedoreClient({ redis, queue: address.queue, prefix: address.prefix, onError });
  const store = new DashboardStore({
    queue,
    redis,
    client,
    address,
    workers: async () => (await listWorkers(redis, address)).workers,
  });
  const table = routes({ store, client, logger, redis, address });
  const pending = new Set<Promise<void>>();

  const handle = async (req: IncomingMessage, res: ServerResponse, closed: () => boolean): Promise<void> => {
    const url = requestUrl(req.url);
    // Without a token, only loopback names may reach it: a page of another site that re-points
    // its own name at 127.0.0.1 (DNS rebinding) gets 421, not the queue.
    if (token === undefined && !isLoopback(hostName(req.headers.host))) {
      return send(res, 421, 'this dashboard answers on its loopback address only (127.0.0.1 or localhost)\n');
    }
    const access = checkAccess(token, {
      cookie: req.headers.cookie,
      authorization: req.headers.authorization,
      queryToken: url.searchParams.get('token'),
    });
    if (!access.ok) {
      return send(
        res,
        401,
        'this dashboard needs its token: open it once as /?token=<STEVEDORE_DASHBOARD_TOKEN> (a cookie keeps it), or send Authorization: Bearer <token>\n',
        'text/plain; charset=utf-8',
        { 'www-authenticate': 'Bearer' },
      );
    }
    if (access.via === 'query') {
      return redirect(res, afterTokenLocation(url), { 'set-cookie': tokenCookie(token as string) });
    }
    // A browser's POST must come from this dashboard's own pages (a Bearer token is never sent by a
    // browser on its own, so such a request is no forgery).
    if (req.method === 'POST' && access.via !== 'bearer' && !sameOrigin(req.headers)) {
      return send(
        res,
        403,
        'refused: a POST to the dashboard must come from its own pages (Origin does not match)\n',
      );
    }
    const route = table[`${req.method === 'HEAD' ? 'GET' : req.method} ${url.pathname}`];
    if (!route) return send(res, 404, 'not found: the dashboard has /, /jobs and /job?id=<job id>\n');
    const r: Request = { req, res, url, closed };
    await route(r);
  };

  const server = createServer((req, res) => {
    let closed = false;
    res.on('close', () => {
      closed = true;
    });
    const done = handle(req, res, () => closed)
      .catch((error: unknown) => {
        const path = (req.url ?? '/').split('?')[0]; // never the query: it may hold the token
        if (res.headersSent) {
          logger.warn({ err: error, path }, 'dashboard: answer cut short');
          res.destroy();
          return;
        }
        const status = answerError(address.queue, res, error);
        if (status >= 500) logger.warn({ err: error, path }, 'dashboard: request failed');
      })
      .finally(() => pending.delete(done));
    pending.add(done);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new Error(
          `dashboard: cannot listen on ${options.listen.host}:${options.listen.port}: ${error.message}; choose another --listen address or port`,
          { cause: error },
        ),
      ),
    );
    server.listen(options.listen.port, options.listen.host, resolve);
  }).catch(async (error: unknown) => {
    await client.close();
    await queue.close();
    redis.disconnect();
    throw error;
  });
  // Once listening, an error (accept failing: EMFILE) is logged, not an unhandled 'error' event.
  server.on('error', (error) => logger.warn({ err: error }, 'dashboard: server error'));
  const bound = server.address() as AddressInfo;
  const shown = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  const url = `http://${shown}:${bound.port}/`;
  logger.info({ url, queue: address.queue, token: token !== undefined }, 'dashboard listening');
  return {
    address: bound,
    url,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      // Open log views end within one blocking read once their connection is gone.
      await Promise.allSettled([...pending]);
      await client.close();
      await queue.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
