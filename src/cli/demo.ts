import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { processEnv } from '../config/env.js';
import { settingReader } from '../config/settings.js';
import { logLevelOf } from '../config/values.js';
import { loadConfig } from '../config/worker.js';
import { openRuntime } from '../executors/index.js';
import { StevedoreClient } from '../jobs/client.js';
import { describeTarget } from '../jobs/connection.js';
import { startWorker } from '../worker/worker.js';
import { parse } from './options.js';

const run = promisify(execFile);
export const DEMO_IMAGE = 'stevedore-test/busybox:1';

/** Builds (or reuses) the demo's busybox image tarball with scripts/build-image.sh (shipped) and returns its path. */
export async function bundledImageTarball(): Promise<string> {
  const script = fileURLToPath(new URL('../../scripts/build-image.sh', import.meta.url));
  const { stdout } = await run('bash', [script]);
  return stdout.trim();
}

const DEMO_HELP = `Usage: stevedore demo

Runs one real container job end to end: starts an embedded Redis (unless REDIS_URL is set),
builds and loads the bundled busybox image from its tarball, starts a worker, submits a job,
prints its result, and stops everything again.`;

export async function demoCommand(args: string[]): Promise<number> {
  const { values } = parse(args, { help: { type: 'boolean', short: 'h' } });
  if (values.help) {
    console.log(DEMO_HELP);
    return 0;
  }
  // One clear line, before anything is started or submitted, when no engine answers.
  await (await openRuntime('docker')).close();
  const stateDir = await mkdtemp(join(tmpdir(), 'stevedore-demo-'));
  const tarball = await bundledImageTarball();
  // The default policy loads no tarballs: the demo's own allows exactly its bundled one's directory.
  const policyPath = join(stateDir, 'policy.json');
  await writeFile(policyPath, JSON.stringify({ imageTarballs: [{ hostPath: dirname(tarball) }] }));
  const config = {
    ...loadConfig(processEnv(), { STEVEDORE_STATE_DIR: stateDir, STEVEDORE_POLICY: policyPath }),
    queue: 'stevedore-demo',
    concurrency: 1,
  };
  const logger = pino({ level: logLevelOf(settingReader(processEnv()), 'warn') });
  const worker = await startWorker(config, { logger });
  const client = new StevedoreClient({ redis: worker.redis, queue: config.queue, prefix: config.prefix });
  try {
    const { id } = await client.submit({
      image: DEMO_IMAGE,
      imageTarball: tarball,
      command: [
        'sh',
        '-c',
        'echo "hello from a Stevedore job in $(hostname)"; echo "a line on stderr" >&2; exit 0',
      ],
      env: { GREETING: 'hello' },
      resources: { vcpus: 1, ram: '64Mi' },
      labels: { source: 'stevedore demo' },
    });
    console.error(
      `submitted job ${id} to queue ${config.queue} at ${describeTarget(worker.redis)}; waiting for its result…`,
    );
    const result = await client.waitForResult(id, { timeoutMs: 120_000 });
    console.log(JSON.stringify(result, null, 2));
    return result.exitCode ?? 1;
  } finally {
    await client.close();
    await worker.close({ graceMs: 0 });
    await rm(stateDir, { recursive: true, force: true });
  }
}
