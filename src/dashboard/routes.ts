import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { StevedoreClient } from '../jobs/client.js';
import { coerceError, UnknownJobError } from '../jobs/errors.js';
import { parseListQuery } from './list-query.js';
import { type LogStreamDeps, MAX_LOG_STREAMS, streamLog } from './log-stream.js';
import { readForm, redirect, send, sendHtml, sendJson } from './respond.js';
import { APP_JS } from './script.js';
import type { DashboardStore } from './store.js';
import { errorPage } from './views/error.js';
import { isCancelOutcome, jobPage } from './views/job.js';
import { jobsPage } from './views/jobs.js';
import { overviewPage } from './views/overview.js';

export interface RouteDeps extends LogStreamDeps {
  store: DashboardStore;
  client: StevedoreClient;
  logger: Logger;
}

/** A request the routes answer; `closed` turns true when its connection goes away. */
export interface Request {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  closed: () => boolean;
}

/** A bad request: the page names the parameter and what it takes (status 400). */
export class BadRequest extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BadRequest';
  }
}

function jobIdParam(params: URLSearchParams): string {
  const id = params.get('id');
  if (!id) throw new BadRequest('id is missing: the job page is /job?id=<job id>');
  return id;
}

/** The dashboard's pages and endpoints, by method and path. */
export function routes(deps: RouteDeps): Record<string, (r: Request) => Promise<void>> {
  const { store, client, logger } = deps;
  const queue = deps.address.queue;
  let openStreams = 0;
  return {
    'GET /': async ({ res }) => sendHtml(res, 200, overviewPage(await store.overview())),
    'GET /jobs': async ({ res, url }) => {
      let query: ReturnType<typeof parseListQuery>;
      try {
        query = parseListQuery(url.searchParams);
      } catch (error) {
        throw new BadRequest(`jobs list: ${coerceError(error).message}`);
      }
      sendHtml(res, 200, jobsPage(queue, await store.jobsPage(query)));
    },
    'GET /job': async ({ res, url }) => {
      const notice = url.searchParams.get('notice');
      const detail = await store.job(jobIdParam(url.searchParams));
      sendHtml(res, 200, jobPage(queue, detail, isCancelOutcome(notice) ? notice : null));
    },
    'GET /job/status': async ({ res, url }) => {
      const j = await store.job(jobIdParam(url.searchParams));
      sendJson(res, 200, {
        state: j.state,
        phase: j.result ? 'done' : (j.progress?.phase ?? 'queued'),
        waiting: j.waiting,
        runs: j.runs,
        finished: j.result !== null,
      });
    },
    'GET /job/logs': async ({ res, url, closed }) => {
      const id = jobIdParam(url.searchParams);
      const stream = url.searchParams.get('stream');
      if (stream !== 'stdout' && stream !== 'stderr') {
        throw new BadRequest(`stream=${JSON.stringify(stream)} is not stdout or stderr`);
      }
      await client.getResult(id); // an unknown job is a 404 before the stream starts
      if (openStreams >= MAX_LOG_STREAMS) {
        return send(res, 503, `${MAX_LOG_STREAMS} log views are open already; close one and reload\n`);
      }
      openStreams += 1;
      try {
        await streamLog(res, deps, id, stream, closed);
      } finally {
        openStreams -= 1;
      }
    },
    'POST /job/cancel': async ({ req, res, url }) => {
      const form = await readForm(req);
      const id = form.get('id') || url.searchParams.get('id');
      if (!id) throw new BadRequest('id is missing: POST /job/cancel with the form field id=<job id>');
      const outcome = await client.cancel(id);
      logger.info({ jobId: id, outcome }, 'dashboard: cancel requested');
      const back = new URLSearchParams({ id, notice: outcome });
      redirect(res, `/job?${back}`);
    },
    'GET /app.js': async ({ res }) => send(res, 200, APP_JS, 'text/javascript; charset=utf-8'),
  };
}

/** The answer for an error a route threw: what failed and what to do, with the right status. */
export function answerError(queue: string, res: ServerResponse, error: unknown): number {
  if (error instanceof UnknownJobError) {
    sendHtml(
      res,
      404,
      errorPage(
        queue,
        'No such job',
        `${error.message}. It may never have existed on queue ${queue}, or it finished long enough ago that it was removed (workers keep the newest finished jobs, STEVEDORE_KEEP_FINISHED).`,
      ),
    );
    return 404;
  }
  if (error instanceof BadRequest) {
    sendHtml(res, 400, errorPage(queue, 'Bad request', error.message));
    return 400;
  }
  sendHtml(
    res,
    500,
    errorPage(
      queue,
      'Reading the queue failed',
      `${coerceError(error).message}. If Redis is down or restarting, the dashboard reconnects by itself: reload in a moment.`,
    ),
  );
  return 500;
}
