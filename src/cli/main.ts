#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=131072 node --max-semi-space-size=1 --v8-pool-size=1 --initial-old-space-size=24 --expose-gc
// A worker is a long-running, I/O-bound daemon, so the shebang sizes V8 for a small heap: small
// semi-spaces and one helper thread (idle RSS), a 24 MB initial old space (no full GCs while
// output streams), --expose-gc for the idle collection (worker/idle-gc.ts). MALLOC_MMAP_THRESHOLD_
// stops glibc raising its threshold, so large freed buffers go back to the system. Only flags
// at start-up work for these; the figures are in BENCHMARKS.md.
import './lazy-transports.js';
import { ConfigError } from '../config/errors.js';
import { InvalidSpecError, UnknownJobError, ValidationError } from '../jobs/errors.js';
import { MAIN_HELP, UsageError } from './usage.js';

type Command = (args: string[]) => Promise<number>;

// Loaded on demand: a worker process should not carry the client commands' modules (the YAML
// parser and the like) in its resident memory.
const COMMANDS: Record<string, () => Promise<Command>> = {
  worker: async () => (await import('./worker-command.js')).workerCommand,
  submit: async () => (await import('./client-commands.js')).submitCommand,
  status: async () => (await import('./client-commands.js')).statusCommand,
  result: async () => (await import('./client-commands.js')).resultCommand,
  cancel: async () => (await import('./client-commands.js')).cancelCommand,
  logs: async () => (await import('./client-commands.js')).logsCommand,
  exec: async () => (await import('./gateway-commands.js')).execCommand,
  shell: async () => (await import('./gateway-commands.js')).shellCommand,
  'port-forward': async () => (await import('./gateway-commands.js')).portForwardCommand,
  demo: async () => (await import('./demo.js')).demoCommand,
  keygen: async () => (await import('./keygen.js')).keygenCommand,
  health: async () => (await import('./health.js')).healthCommand,
  dashboard: async () => (await import('./dashboard.js')).dashboardCommand,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(MAIN_HELP);
    return name === undefined ? 2 : 0;
  }
  const load = COMMANDS[name];
  if (!load) throw new UsageError(`unknown command ${JSON.stringify(name)}; run "stevedore --help"`);
  const command = await load();
  return command(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: Error) => {
    // One clear line; the first line of multi-line messages (spec problems) keeps its list.
    console.error(`stevedore: ${error.message}`);
    const usage = [UsageError, ConfigError, InvalidSpecError, ValidationError, UnknownJobError].some(
      (k) => error instanceof k,
    );
    process.exitCode = usage ? 2 : 1;
  },
);
