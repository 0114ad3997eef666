export * from './executors/index.js';
export * from './jobs/errors.js';
