import type { Logger } from 'pino';
import type { HttpAddress } from '../config/http-address.js';
import { WorkerEvents } from '../worker/observer.js';
import { type HttpEndpoint, startHttpEndpoint } from './http.js';
import { WorkerMetrics } from './metrics.js';

/** The HTTP endpoint of one worker: pass `events` to startWorker, then `attach` its handle. */
export interface WorkerEndpoint extends HttpEndpoint {
  readonly events: WorkerEvents;
  readonly metrics: WorkerMetrics;
}

/** Listens on `listen` with metrics subscribed to a fresh WorkerEvents, before the worker starts. */
export async function startWorkerEndpoint(listen: HttpAddress, logger: Logger): Promise<WorkerEndpoint> {
  const events = new WorkerEvents();
  const metrics = new WorkerMetrics(events);
  const http = await startHttpEndpoint({ listen, metrics, logger });
  return { ...http, address: http.address, events, metrics };
}
