import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { DockerRuntime } from '../../src/executors/docker/index.js';
import { SingularityRuntime } from '../../src/executors/singularity/runtime.js';
import { coerceError } from '../../src/jobs/errors.js';
import { labelFilters } from '../../src/jobs/names.js';
import { stevedore } from '../helpers/cli.js';
import { testDocker } from '../helpers/docker.js';
import { watchCreates } from '../helpers/events.js';
import { openTestPodman } from '../helpers/podman.js';
import { testSingularityBin } from '../helpers/singularity.js';
import { busybox, testPolicy, useTestWorld, writePolicy } from '../helpers/stevedore.js';

// The hostile specs run on every runtime in hostile.test.ts (the hostile suite).
describe('worker policy', () => {
  const world = useTestWorld();
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stevedore-policy-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a job of six million elements as invalid at once, and the next job runs as usual', async () => {
    const { h, redis } = world;
    await h.worker({ concurrency: 1 });
    const client = h.client();
    const queue = new Queue(h.queue, { connection: { host: '127.0.0.1', port: redis.port } });
    try {
      // 12 MB of JSON, under the byte limit: only its count gives it away, before BullMQ's JSON.parse.
      const huge = await queue.add('run', { ...busybox(['true']), command: new Array(6_000_000).fill(0) });
      const next = await client.submit(busybox(['echo', 'next']));
      const refused = await client.waitForResult(huge.id as string, { timeoutMs: 30_000 });
      expect(refused).toMatchObject({ state: 'Failed', reason: 'invalid', containerId: null, attempt: 1 });
      expect(refused.error).toEqual({
        phase: 'validating',
        message:
          'invalid job spec (1 problem):\n  - (spec): has more than 20000 elements (array items and object fields)',
      });
      // Its data is dropped from Redis, so no later reader parses it again.
      expect((await queue.getJob(huge.id as string))?.data).toEqual({});
      // Counted on the text before BullMQ's JSON.parse, which never sees it: text that is not even
      // JSON (written to Redis directly) is refused by its count, where a parse would throw.
      await queue.pause();
      const unparsed = await queue.add('run', busybox(['true']));
      const raw = new Redis(redis.url);
      try {
        const text = `{"image":"busybox:1","command":[${'0,'.repeat(6_000_000)}`;
        await raw.hset(queue.toKey(unparsed.id as string), 'data', text);
      } finally {
        raw.disconnect();
      }
      await queue.resume();
      // Asked by state, not by getResult: the client's Job.fromId would parse the text itself.
      await vi.waitFor(async () => expect(await queue.getJobState(unparsed.id as string)).toBe('failed'), {
        timeout: 30_000,
        interval: 100,
      });
      const neverParsed = await client.waitForResult(unparsed.id as string, { timeoutMs: 30_000 });
      expect(neverParsed).toMatchObject({ state: 'Failed', reason: 'invalid', containerId: null });
      expect(neverParsed.error).toEqual(refused.error);
      const ran = await client.waitForResult(next.id, { timeoutMs: 30_000 });
      expect(ran).toMatchObject({ state: 'Complete', exitCode: 0 });
      expect(ran.stdout.tail).toBe('next\n');
    } finally {
      await queue.close();
    }
  });

  it('each runtime names where it keeps its own data, which the worker then denies', async () => {
    const docker = testDocker();
    const root = ((await docker.info()) as { DockerRootDir: string }).DockerRootDir;
    const dockerRuntime = new DockerRuntime({ client: docker, netns: 'fresh' });
    try {
      expect(await dockerRuntime.dataPaths()).toEqual([root]);
    } finally {
      await dockerRuntime.close();
    }
    const opened = await openTestPodman('policy-data-paths');
    if (opened.podman === null) console.warn(`[skip] podman data paths: ${opened.reason}`);
    else {
      try {
        const graphRoot = (await execa('podman', ['info', '--format', '{{.Store.GraphRoot}}'])).stdout.trim();
        expect(await opened.podman.runtime.dataPaths()).toEqual([graphRoot]);
      } finally {
        await opened.podman.close();
      }
    }
    const bin = await testSingularityBin();
    if (bin === null)
      console.warn('[skip] apptainer data paths: neither apptainer nor singularity is installed');
    else {
      const sifCache = join(dir, 'sif');
      const stateDir = join(dir, 'singularity-state');
      const apptainer = await SingularityRuntime.open({ bin, sifCache, stateDir });
      expect(await apptainer.dataPaths()).toEqual([sifCache, stateDir]);
      await apptainer.close();
    }
  });

  it('under the default policy denies a tarball and a host mount, and logs the refusal without env values', async () => {
    const { h } = world;
    const lines: string[] = [];
    await h.worker(
      { policyPath: undefined },
      { logger: pino({ level: 'info' }, { write: (line: string) => lines.push(line) }) },
    );
    const creates = await watchCreates(testDocker(), labelFilters(h.queue));
    const client = h.client();
    const spec = busybox(['true'], { env: { TOKEN: 'hunter2-secret' }, mounts: { '/d': { hostPath: dir } } });
    const { id } = await client.submit(spec);
    const result = await client.waitForResult(id, { timeoutMs: 20_000 });
    expect(result).toMatchObject({ state: 'Failed', reason: 'invalid', attempt: 1 });
    expect(result.error?.message).toBe(
      `denied by policy: imageTarball ${spec.imageTarball} is not under an allowed tarball path; mounts./d.hostPath ${dir} is not under an allowed host path`,
    );
    expect(await creates.stop()).toEqual([]);
    const refusal = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === 'job denied by policy');
    expect(refusal).toMatchObject({ jobId: id, policy: '(defaults)' });
    expect(lines.join('')).not.toContain('hunter2-secret');
  });

  it('gives a job the policy defaults: its memory limit and its run time cap', async () => {
    const { h } = world;
    const policyPath = await writePolicy(await mkdtemp(join(dir, 'defaults-')), {
      ...testPolicy(),
      resources: { defaultRam: '48Mi' },
      maxRunTimeSeconds: 2,
    });
    await h.worker({ policyPath });
    const client = h.client();
    const limit = await client.submit(busybox(['cat', '/sys/fs/cgroup/memory/memory.limit_in_bytes']));
    expect((await client.waitForResult(limit.id, { timeoutMs: 30_000 })).stdout.tail).toBe(
      `${48 * 1024 ** 2}\n`,
    );
    const long = await client.submit(busybox(['sleep', '60'], { stopGraceSeconds: 0 }));
    const stopped = await client.waitForResult(long.id, { timeoutMs: 30_000 });
    expect(stopped).toMatchObject({ state: 'Cancelled', reason: 'timeout' });
  });

  it('a bad policy file stops the worker at start, naming the key; a missing one names the file', async () => {
    const { h } = world;
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'mounts:\n  - hostPath: /srv\n    readwrite: true\nnetworkModes: host\n');
    const error = await h.worker({ policyPath: bad }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect(coerceError(error).message).toBe(
      `policy STEVEDORE_POLICY=${bad} is invalid: mounts.0: unknown key readwrite; networkModes: Invalid input: expected array, received string`,
    );
    const missing = await h.worker({ policyPath: join(dir, 'nope.yaml') }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ConfigError);
    expect(coerceError(missing).message).toMatch(/^STEVEDORE_POLICY=.*nope\.yaml cannot be read \(ENOENT\)/);
  });

  it('`stevedore worker --policy FILE` reads that file: an unknown key stops it at start, named in one line', async () => {
    const bad = join(dir, 'flag.json');
    await writeFile(bad, JSON.stringify({ networkModes: ['default'], mount: [] }));
    const r = await stevedore(['worker', '--policy', bad], {
      env: { REDIS_URL: world.redis.url, STEVEDORE_QUEUE: world.h.queue, STEVEDORE_STATE_DIR: dir },
      timeout: 30_000,
    });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toBe(
      `stevedore: policy STEVEDORE_POLICY=${bad} is invalid: (policy): unknown key mount`,
    );
  });
});
