import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, QueueEvents } from 'bullmq';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOLDER_LABEL } from '../../src/executors/docker/netns/holders.js';
import { StevedoreClient } from '../../src/jobs/client.js';
import { LABELS } from '../../src/jobs/names.js';
import type { JobResult } from '../../src/jobs/result.js';
import { COLD_UP_MS, ComposeStack, SEED, STACK } from '../helpers/compose.js';
import { TEST_IMAGE, testDocker, testImageTarball } from '../helpers/docker.js';
import { until } from '../helpers/stevedore.js';

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const JOB_TIMEOUT_MS = 60_000;

const stack = new ComposeStack();
const docker = testDocker();

/** Containers of the stack's project or of its queue (jobs, namespace holders) that still exist. */
async function leftovers(): Promise<string[]> {
  const filters = [
    `com.docker.compose.project=${stack.project}`,
    `${LABELS.queue}=${stack.queue}`,
    `${HOLDER_LABEL}=${stack.queue}`,
  ];
  const found = await Promise.all(
    filters.map((label) => docker.listContainers({ all: true, filters: { label: [label] } })),
  );
  return found.flat().map((c) => `${c.Names.join(',')} (${c.State})`);
}

async function expectOutputOnHost(result: JobResult, text: string): Promise<void> {
  const path = result.stdout.path;
  expect(path?.startsWith(stack.logDir)).toBe(true);
  expect(await readFile(path as string, 'utf8')).toBe(text);
}

describe('the compose stack (scripts/stack.sh, two worker replicas)', () => {
  beforeAll(async () => {
    // Workers run in containers: the image must be in the engine, a host tarball path means nothing there.
    if (
      !(await docker
        .getImage(TEST_IMAGE)
        .inspect()
        .catch(() => null))
    ) {
      await execa('docker', ['load', '-i', testImageTarball()]);
    }
    await stack.prepare();
    await stack.stack(['up', '-d', '--scale', 'worker=2'], COLD_UP_MS);
  }, COLD_UP_MS + 60_000);
  afterAll(() => stack.close(), 120_000);

  it('runs a job submitted by the CLI, with the exit code, stdout and a log file at the same path on the host', async () => {
    const run = await execa(
      process.execPath,
      [CLI, 'submit', '--image', TEST_IMAGE, '--wait', '--', 'sh', '-c', 'echo from-cli; exit 3'],
      {
        reject: false,
        timeout: JOB_TIMEOUT_MS,
        env: { REDIS_URL: stack.redisUrl, STEVEDORE_QUEUE: stack.queue },
      },
    );
    expect(run.stderr).toBe('');
    expect(run.exitCode).toBe(3);
    const result = JSON.parse(run.stdout) as JobResult;
    expect(result).toMatchObject({ state: 'Complete', reason: 'exited', exitCode: 3 });
    expect(result.stdout.tail).toBe('from-cli\n');
    await expectOutputOnHost(result, 'from-cli\n');
  });

  it('runs under the policy stack.sh wrote: a job binds a directory under STEVEDORE_JOB_DATA, and a bind of /etc is refused', async () => {
    expect(await readFile(stack.policyFile, 'utf8')).toContain(`hostPath: ${stack.jobData}`);
    const dir = join(stack.jobData, 'job-dir');
    await mkdir(dir, { recursive: true });
    const client = new StevedoreClient({ redis: stack.redisUrl, queue: stack.queue });
    try {
      const allowed = await client.submit({
        image: TEST_IMAGE,
        command: ['sh', '-c', 'echo written > /out/file'],
        mounts: { '/out': { hostPath: dir, readOnly: false } },
      });
      expect(await client.waitForResult(allowed.id, { timeoutMs: JOB_TIMEOUT_MS })).toMatchObject({
        state: 'Complete',
        exitCode: 0,
      });
      expect(await readFile(join(dir, 'file'), 'utf8')).toBe('written\n');
      const denied = await client.submit({
        image: TEST_IMAGE,
        command: ['true'],
        mounts: { '/h': { hostPath: '/etc', readOnly: true } },
      });
      const refused = await client.waitForResult(denied.id, { timeoutMs: JOB_TIMEOUT_MS });
      expect(refused).toMatchObject({ state: 'Failed', reason: 'invalid' });
      expect(JSON.stringify(refused)).toMatch(/\/etc/);
    } finally {
      await client.close();
    }
  });

  it('reports each worker healthy through its own /readyz (stevedore health)', async () => {
    const workers = await docker.listContainers({
      filters: {
        label: [`com.docker.compose.project=${stack.project}`, 'com.docker.compose.service=worker'],
      },
    });
    expect(workers).toHaveLength(2);
    // The healthcheck runs every 10 s after a 10 s start period; on a loaded host one check may take seconds.
    await until(async () => {
      const states = await Promise.all(
        workers.map(async (w) => (await docker.getContainer(w.Id).inspect()).State.Health?.Status),
      );
      return states.every((s) => s === 'healthy');
    }, 100_000);
  }, 120_000);

  it('runs a job submitted with StevedoreClient', async () => {
    const client = new StevedoreClient({ redis: stack.redisUrl, queue: stack.queue });
    try {
      const { id } = await client.submit({ image: TEST_IMAGE, command: ['sh', '-c', 'echo from-client'] });
      const result = await client.waitForResult(id, { timeoutMs: JOB_TIMEOUT_MS });
      expect(result).toMatchObject({ state: 'Complete', exitCode: 0 });
      await expectOutputOnHost(result, 'from-client\n');
    } finally {
      await client.close();
    }
  });

  it('runs a job enqueued with plain BullMQ (the README wire format) and answers in its returnvalue', async () => {
    const connection = new Redis(stack.redisUrl, { maxRetriesPerRequest: null });
    const queue = new Queue(stack.queue, { connection, prefix: 'bull' });
    const eventsConnection = connection.duplicate();
    const events = new QueueEvents(stack.queue, { connection: eventsConnection, prefix: 'bull' });
    try {
      await events.waitUntilReady();
      const job = await queue.add(
        'run',
        { image: TEST_IMAGE, command: ['sh', '-c', 'echo from-bullmq; exit 7'] },
        { jobId: `bullmq-${Date.now()}`, attempts: 3, backoff: { type: 'exponential', delay: 1000 } },
      );
      const result = (await job.waitUntilFinished(events, JOB_TIMEOUT_MS)) as JobResult;
      expect(result).toMatchObject({ state: 'Complete', exitCode: 7 });
      expect(result.stdout.tail).toBe('from-bullmq\n');
      await expectOutputOnHost(result, 'from-bullmq\n');
    } finally {
      await events.close();
      await queue.close();
      await eventsConnection.quit();
      await connection.quit();
    }
  });

  it('keeps the seeded base images and the worker image when their inputs are unchanged', async () => {
    const started = Date.now();
    expect(await execa('bash', [SEED, '--check'], { reject: false })).toMatchObject({
      exitCode: 0,
      stdout: '',
    });
    expect(Date.now() - started).toBeLessThan(2_000);
    const before = await docker.getImage('stevedore/worker:local').inspect();
    await stack.stack(['build']);
    expect((await docker.getImage('stevedore/worker:local').inspect()).Id).toBe(before.Id);
  });

  it('down -v leaves no container of the project or its queue, and no volume', async () => {
    await stack.stack(['down', '-v']);
    expect(await leftovers()).toEqual([]);
    const { Volumes } = await docker.listVolumes({
      filters: { label: [`com.docker.compose.project=${stack.project}`] },
    });
    expect(Volumes.map((v) => v.Name)).toEqual([]);
    expect(existsSync(stack.logDir)).toBe(true); // the host's log dir is the user's, never removed
  });
});

describe('scripts/stack.sh settings', () => {
  it('generates a Redis password into the env file once, says where, and keeps it private', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stevedore-stack-env-'));
    const envFile = join(dir, 'env');
    const run = () =>
      execa('bash', [STACK, 'config', '-q'], {
        reject: false,
        env: {
          STEVEDORE_ENV_FILE: envFile,
          STEVEDORE_LOG_DIR: join(dir, 'logs'),
          STEVEDORE_POLICY: join(dir, 'policy.yml'),
          STEVEDORE_JOB_DATA: join(dir, 'data'),
        },
      });
    try {
      const first = await run();
      expect(first).toMatchObject({
        exitCode: 0,
        stderr: [
          `stack: generated STEVEDORE_REDIS_PASSWORD into ${envFile}`,
          `stack: wrote the default policy to ${join(dir, 'policy.yml')} (job mounts under ${join(dir, 'data')})`,
        ].join('\n'),
      });
      const written = await readFile(envFile, 'utf8');
      expect(written).toMatch(/^STEVEDORE_REDIS_PASSWORD=[0-9a-f]{48}$/m);
      expect(written).toMatch(/^STEVEDORE_DOCKER_GID=\d+$/m);
      expect(written).toMatch(/^STEVEDORE_STOP_GRACE=45s$/m);
      expect((await stat(envFile)).mode & 0o777).toBe(0o600);
      expect(await run()).toMatchObject({ exitCode: 0, stderr: '' });
      expect(await readFile(envFile, 'utf8')).toBe(written);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
