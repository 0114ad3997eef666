#!/usr/bin/env node
import { InvalidSpecError, UnknownJobError, ValidationError } from '../jobs/errors.js';
import { ConfigError } from '../worker/config.js';
import {
  cancelCommand,
  logsCommand,
  resultCommand,
  statusCommand,
  submitCommand,
} from './client-commands.js';
import { demoCommand } from './demo.js';
import { MAIN_HELP, UsageError } from './usage.js';
import { workerCommand } from './worker-command.js';

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  worker: workerCommand,
  submit: submitCommand,
  status: statusCommand,
  result: resultCommand,
  cancel: cancelCommand,
  logs: logsCommand,
  demo: demoCommand,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(MAIN_HELP);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}; run "stevedore --help"`);
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
