import { parseArgs } from 'node:util';
import { CLIENT_OPTIONS, type ClientFlags, parse } from './options.js';
import { UsageError } from './usage.js';

/** What exec, shell and port-forward take besides the client options. */
export const GATEWAY_CLIENT_OPTIONS = {
  ...CLIENT_OPTIONS,
  'signing-key': { type: 'string' },
  'gateway-tls-ca': { type: 'string' },
} as const;

export const EXEC_OPTIONS = {
  ...GATEWAY_CLIENT_OPTIONS,
  user: { type: 'string', short: 'u' },
  workdir: { type: 'string', short: 'w' },
  env: { type: 'string', short: 'e', multiple: true },
  interactive: { type: 'boolean', short: 'i' },
  tty: { type: 'boolean', short: 't' },
} as const;

export type GatewayFlags = ClientFlags & { 'gateway-tls-ca'?: string };

export interface ExecArgs {
  help: boolean;
  jobId: string;
  command: string[];
  user?: string;
  workdir?: string;
  env: Record<string, string>;
  interactive: boolean;
  tty: boolean;
  flags: GatewayFlags;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * `exec <jobId> [options] [--] COMMAND ARGS…`: options may come before or after the job id; the
 * command starts after `--`, or at the first word after the job id, so the command's own options
 * (`sh -c …`) are never read as ours.
 */
export function parseExecArgs(args: string[]): ExecArgs {
  const { tokens } = parseArgs({
    args,
    options: EXEC_OPTIONS,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  let jobIdAt = -1;
  let commandAt = args.length;
  let ours = args.length;
  for (const token of tokens) {
    if (token.kind === 'option-terminator') {
      if (jobIdAt === -1)
        throw new UsageError('exec: put the job id before --: stevedore exec <id> -- COMMAND');
      ours = token.index;
      commandAt = token.index + 1;
      break;
    }
    if (token.kind !== 'positional') continue;
    if (jobIdAt === -1) {
      jobIdAt = token.index;
      continue;
    }
    ours = token.index;
    commandAt = token.index;
    break;
  }
  const { values } = parse(args.slice(0, ours), EXEC_OPTIONS);
  if (values.help)
    return { help: true, jobId: '', command: [], env: {}, interactive: false, tty: false, flags: {} };
  const jobId = jobIdAt === -1 ? undefined : args[jobIdAt];
  if (!jobId) throw new UsageError('exec needs a job id and a command: stevedore exec <id> -- COMMAND ARGS…');
  const command = args.slice(commandAt);
  if (command.length === 0 || !command[0]) {
    throw new UsageError(`exec needs a command to run: stevedore exec ${jobId} -- COMMAND ARGS…`);
  }
  const { user, workdir, env, interactive, tty, ...flags } = values;
  if (workdir !== undefined && !workdir.startsWith('/')) {
    throw new UsageError(
      `--workdir ${JSON.stringify(workdir)}: must be an absolute path inside the container`,
    );
  }
  return {
    help: false,
    jobId,
    command,
    user,
    workdir,
    env: envOf(env ?? []),
    interactive: interactive === true,
    tty: tty === true,
    flags,
  };
}

function envOf(pairs: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    const name = at === -1 ? pair : pair.slice(0, at);
    if (at === -1 || !ENV_NAME.test(name)) {
      throw new UsageError(
        `--env ${JSON.stringify(pair)}: expected NAME=VALUE with a name of letters, digits and _ (not starting with a digit)`,
      );
    }
    env[name] = pair.slice(at + 1);
  }
  return env;
}

/** `shell <jobId>`: exec -it of the image's shell. */
export function parseShellArgs(args: string[]): { help: boolean; jobId: string; flags: GatewayFlags } {
  const { values, positionals } = parse(args, GATEWAY_CLIENT_OPTIONS);
  if (values.help) return { help: true, jobId: '', flags: {} };
  if (positionals.length !== 1 || !positionals[0]) {
    throw new UsageError('shell needs exactly one job id: stevedore shell <id>');
  }
  const { help: _help, ...flags } = values;
  return { help: false, jobId: positionals[0], flags };
}

/**
 * The image's shell, started with a terminal: /bin/bash where the image has it, else /bin/sh
 * (asked of /bin/sh itself, so one session does it and no probe exec is audited).
 */
export const SHELL_COMMAND = [
  '/bin/sh',
  '-c',
  'if [ -x /bin/bash ]; then exec /bin/bash; fi; exec /bin/sh',
] as const;

export interface ForwardArgs {
  help: boolean;
  jobId: string;
  /** 0: any free port. */
  localPort: number;
  remotePort: number;
  flags: GatewayFlags;
}

/** `port-forward <jobId> [LOCAL:]REMOTE`: LOCAL defaults to REMOTE; `:REMOTE` takes any free local port. */
export function parseForwardArgs(args: string[]): ForwardArgs {
  const { values, positionals } = parse(args, GATEWAY_CLIENT_OPTIONS);
  if (values.help) return { help: true, jobId: '', localPort: 0, remotePort: 0, flags: {} };
  const [jobId, ports] = positionals;
  if (positionals.length !== 2 || !jobId || !ports) {
    throw new UsageError(
      'port-forward needs a job id and a port: stevedore port-forward <id> [LOCAL:]REMOTE',
    );
  }
  const { help: _help, ...flags } = values;
  return { help: false, jobId, ...parsePorts(ports), flags };
}

export function parsePorts(text: string): { localPort: number; remotePort: number } {
  const parts = text.split(':');
  if (parts.length > 2) {
    throw new UsageError(
      `port-forward ${JSON.stringify(text)}: expected [LOCAL:]REMOTE, such as 8080:80 or 80`,
    );
  }
  const remote = port(parts.at(-1) ?? '', 'REMOTE', 1);
  const local = parts.length === 2 ? (parts[0] === '' ? 0 : port(parts[0] as string, 'LOCAL', 1)) : remote;
  return { localPort: local, remotePort: remote };
}

function port(text: string, what: string, min: number): number {
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > 65_535) {
    throw new UsageError(`port-forward: ${what} port ${JSON.stringify(text)} is not a TCP port (1–65535)`);
  }
  return n;
}
