// The whole package: the producer's side (also alone as `stevedore/client`), the executors and the worker.
export * from './client.js';
export { ConfigError } from './config/errors.js';
export { loadConfig, type WorkerConfig } from './config/worker.js';
export * from './executors/index.js';
export { startGatewayServer } from './gateway/server.js';
export { type WorkerEventMap, WorkerEvents } from './worker/observer.js';
export { startWorker, type WorkerHandle, type WorkerProbe } from './worker/worker.js';
