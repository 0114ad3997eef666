import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import type { StevedoreClient } from '../jobs/client.js';
import { coerceError } from '../jobs/errors.js';
import type { OutputStream } from '../jobs/keys.js';
import type { SubmitOptions } from '../jobs/submission.js';
import { attemptsTable } from './attempts-table.js';
import { CLIENT_OPTIONS, clientFrom, jobIdArg, parse } from './options.js';
import { specFromArgs } from './spec-from-args.js';
import { LOGS_HELP, SUBMIT_HELP, UsageError } from './usage.js';

const SUBMIT_OPTIONS = {
  ...CLIENT_OPTIONS,
  image: { type: 'string' },
  'image-tarball': { type: 'string' },
  pull: { type: 'string' },
  env: { type: 'string', multiple: true },
  workdir: { type: 'string' },
  mount: { type: 'string', multiple: true },
  vcpus: { type: 'string' },
  ram: { type: 'string' },
  network: { type: 'boolean' },
  'no-init': { type: 'boolean' },
  'stdin-file': { type: 'string' },
  'max-run-time': { type: 'string' },
  'stop-grace': { type: 'string' },
  label: { type: 'string', multiple: true },
  'job-id': { type: 'string' },
  attempts: { type: 'string' },
  priority: { type: 'string' },
  delay: { type: 'string' },
  wait: { type: 'boolean' },
  timeout: { type: 'string' },
  'signing-key': { type: 'string' },
  'not-after': { type: 'string' },
} as const;

async function withClient<T>(client: StevedoreClient, fn: (c: StevedoreClient) => Promise<T>): Promise<T> {
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

async function readSpecFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read spec file ${path}: ${coerceError(error).message}`);
  }
  try {
    const parsed: unknown = /\.ya?ml$/i.test(path) ? parseYaml(text) : JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new Error('the top level must be an object');
    }
    return parsed as Record<string, unknown>;
  } catch (error) {
    throw new UsageError(
      `spec file ${path} is not valid ${/\.ya?ml$/i.test(path) ? 'YAML' : 'JSON'}: ${coerceError(error).message}`,
    );
  }
}

function wholeNumber(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new UsageError(`--${flag} ${JSON.stringify(value)}: expected a whole number`);
  return n;
}

function timeOf(flag: string, value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const time = new Date(value);
  if (Number.isNaN(time.getTime()))
    throw new UsageError(
      `--${flag} ${JSON.stringify(value)}: expected an ISO 8601 time such as 2026-12-31T23:00:00Z`,
    );
  return time;
}

export async function submitCommand(args: string[]): Promise<number> {
  const dashdash = args.indexOf('--');
  const before = dashdash === -1 ? args : args.slice(0, dashdash);
  const command = dashdash === -1 ? [] : args.slice(dashdash + 1);
  const { values, positionals } = parse(before, SUBMIT_OPTIONS);
  if (values.help) {
    console.log(SUBMIT_HELP);
    return 0;
  }
  if (positionals.length > 1) {
    throw new UsageError(
      `submit takes at most one spec file, got ${positionals.length}; put the command after --`,
    );
  }
  const file = positionals[0] ? await readSpecFile(positionals[0]) : {};
  const spec = specFromArgs(values, command, file);
  if (values['stdin-file']) {
    const bytes = await readFile(values['stdin-file']).catch((error: Error) => {
      throw new UsageError(`cannot read --stdin-file ${values['stdin-file']}: ${error.message}`);
    });
    spec.stdin = { base64: bytes.toString('base64') };
  }
  const options: SubmitOptions = {
    jobId: values['job-id'],
    attempts: wholeNumber('attempts', values.attempts),
    priority: wholeNumber('priority', values.priority),
    delay: wholeNumber('delay', values.delay),
    notAfter: timeOf('not-after', values['not-after']),
  };
  const timeoutMs = wholeNumber('timeout', values.timeout);
  return withClient(await clientFrom(values, { signing: true }), async (client) => {
    const { id } = await client.submit(spec, options);
    if (!values.wait) {
      console.log(id);
      return 0;
    }
    const result = await client.waitForResult(id, { timeoutMs });
    console.log(JSON.stringify(result, null, 2));
    if (result.exitCode !== null) return result.exitCode;
    return 1;
  });
}

export async function statusCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, CLIENT_OPTIONS);
  if (values.help) {
    console.log(
      "Usage: stevedore status <id>\n\nPrints the job's current phase, its phase history and its state as JSON; `runs` says\nwhich run it is on and the reruns each budget of its retry rules has left, and while it\nis not running, `waiting` says why (stderr says both in words).",
    );
    return 0;
  }
  const id = jobIdArg('status', positionals);
  return withClient(await clientFrom(values), async (client) => {
    const [{ progress, waiting, runs }, result] = await Promise.all([
      client.getStatus(id),
      client.getResult(id),
    ]);
    const status = result
      ? { id, finished: true, state: result.state, reason: result.reason, exitCode: result.exitCode, runs }
      : { id, finished: false, phase: progress?.phase ?? 'queued', progress, waiting, runs };
    console.log(JSON.stringify(status, null, 2));
    // For people; stdout stays one JSON document for scripts.
    console.error(`job ${id}: ${runs.message}`);
    if (!result && waiting) console.error(`job ${id} waits: ${waiting.message}`);
    return 0;
  });
}

export async function resultCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...CLIENT_OPTIONS, table: { type: 'boolean' } });
  if (values.help) {
    console.log(
      'Usage: stevedore result [--table] <id>\n\nPrints the result of a finished job as JSON; exit 3 while it is unfinished.\n' +
        '  --table    print its history instead: one row per run (start, end, worker, exit code or reason,\n' +
        '             the retry rule that matched, whether it ran again and why)',
    );
    return 0;
  }
  const id = jobIdArg('result', positionals);
  return withClient(await clientFrom(values), async (client) => {
    const result = await client.getResult(id);
    if (!result) {
      console.error(`job ${id} has not finished yet; try: stevedore status ${id}`);
      return 3;
    }
    console.log(values.table ? attemptsTable(result) : JSON.stringify(result, null, 2));
    return 0;
  });
}

export async function cancelCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, CLIENT_OPTIONS);
  if (values.help) {
    console.log(
      'Usage: stevedore cancel <id>\n\nCancels a waiting job at once, or stops a running one (its worker stops the container).',
    );
    return 0;
  }
  const id = jobIdArg('cancel', positionals);
  return withClient(await clientFrom(values), async (client) => {
    const outcome = await client.cancel(id);
    const text = {
      cancelled: `job ${id} cancelled before it ran`,
      cancelling: `job ${id} is running: its worker is stopping it`,
      finished: `job ${id} had already finished; nothing to cancel`,
    }[outcome];
    console.log(text);
    return 0;
  });
}

/** Writes every chunk to `out`, waiting for it to drain when its buffer is full. */
async function pump(chunks: AsyncIterable<Buffer>, out: NodeJS.WritableStream): Promise<void> {
  // A reader that goes away (`stevedore logs | head`) is EPIPE on our stdout: stop reading,
  // not an unhandled 'error' event.
  // The listener stays: a later write's error would otherwise end the process the same way.
  let gone: Error | undefined;
  out.on('error', (error: Error) => {
    gone ??= error;
  });
  for await (const chunk of chunks) {
    if (gone) break;
    if (!out.write(chunk)) {
      await new Promise<void>((resolve) => {
        out.once('drain', resolve);
        out.once('error', () => resolve());
      });
    }
  }
  if (gone && (gone as NodeJS.ErrnoException).code !== 'EPIPE') throw gone;
}

export async function logsCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    ...CLIENT_OPTIONS,
    follow: { type: 'boolean', short: 'f' },
    stdout: { type: 'boolean' },
    stderr: { type: 'boolean' },
    events: { type: 'boolean' },
  });
  if (values.help) {
    console.log(LOGS_HELP);
    return 0;
  }
  const picked = (['stdout', 'stderr', 'events'] as const).filter((s) => values[s]);
  if (picked.length > 1) throw new UsageError('logs: choose one of --stdout, --stderr and --events');
  const id = jobIdArg('logs', positionals);
  // As `docker logs`: each stream to its own fd, so `2>/dev/null` or `2>&1` work as usual.
  const fdOf: Record<OutputStream, NodeJS.WritableStream> = {
    stdout: process.stdout,
    stderr: process.stderr,
    events: process.stdout,
  };
  const streams: OutputStream[] = picked.length > 0 ? picked : ['stdout', 'stderr'];
  return withClient(await clientFrom(values), async (client) => {
    const follow = values.follow ?? false;
    await Promise.all(streams.map((stream) => pump(client.logs(id, { follow, stream }), fdOf[stream])));
    return 0;
  });
}
