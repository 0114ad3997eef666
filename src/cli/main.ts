#!/usr/bin/env -S MALLOC_MMAP_THRESHOLD_=131072 node --max-semi-space-size=1 --v8-pool-size=1 --initial-old-space-size=24 --expose-gc
// A worker is a long-running, I/O-bound daemon: V8's default young generation (16 MiB
// semi-spaces) holds ~30 MB of idle RSS it never needs; 1 MiB semi-spaces cost a few more
// scavenges under heavy output, and one V8 helper thread instead of one per core saves ~4 MB
// more. With its ~15 MB heap V8 otherwise starts a full mark-compact every 150–300 ms while
// output streams through (35–40 per 500 MB); a 24 MB initial old-space limit leaves one, at
// the same RSS. --expose-gc lets an idle worker collect once (worker/idle-gc.ts): ~4 MB less
// idle RSS (BENCHMARKS.md). Only flags at start-up work for these. MALLOC_MMAP_THRESHOLD_
// fixes glibc's threshold at 128 KiB: otherwise freeing a large buffer (a job's 256 KiB read
// buffer, its 1 MiB file blocks) raises it, later ones come from the heap and stay resident
// after they are freed; measured 2–4 MB less idle RSS after 100 jobs (four pairs).
import './lazy-transports.js';
import { InvalidSpecError, UnknownJobError, ValidationError } from '../jobs/errors.js';
import { ConfigError } from '../worker/config.js';
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
  demo: async () => (await import('./demo.js')).demoCommand,
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
