import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { coerceError, InvalidSpecError } from '../../src/jobs/errors.js';
import { labelFilters } from '../../src/jobs/names.js';
import { testDocker } from '../helpers/docker.js';
import { watchCreates } from '../helpers/events.js';
import { INVALID_SPECS as INVALID } from '../helpers/invalid-specs.js';
import { busybox, testPolicy, useTestWorld, writePolicy } from '../helpers/stevedore.js';

const world = useTestWorld();

describe('job spec validation', () => {
  it('the client lists every bad field at once', async () => {
    const error = await world.h
      .client()
      .submit({ image: '', command: [], resources: { vcpus: 0 }, extra: true } as never)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidSpecError);
    const message = coerceError(error).message;
    expect(message).toMatch(/^invalid job spec \(4 problems\)/);
    for (const path of ['image', 'command', 'resources.vcpus', 'unknown field extra'])
      expect(message).toContain(path);
  });

  it('a worker fails every invalid spec at once, unretried, with the same message and no container', async () => {
    const { h } = world;
    await h.worker({ concurrency: 4 });
    const client = h.client();
    // Bypass the client's check, as a producer using BullMQ directly would.
    const queue = new Queue(h.queue, { connection: { host: '127.0.0.1', port: world.redis.port } });
    const creates = await watchCreates(testDocker(), labelFilters(h.queue));
    try {
      const jobs = await Promise.all(
        INVALID.map(([, spec]) =>
          queue.add('run', spec, { attempts: 3, backoff: { type: 'fixed', delay: 10 } }),
        ),
      );
      for (const [i, job] of jobs.entries()) {
        const [what, , expected] = INVALID[i] as (typeof INVALID)[number];
        const result = await client.waitForResult(job.id as string, { timeoutMs: 20_000 });
        expect(result, what).toMatchObject({
          state: 'Failed',
          reason: 'invalid',
          containerId: null,
          attempt: 1,
        });
        expect(result.error?.phase).toBe('validating');
        expect(result.error?.message, what).toMatch(expected);
        const fresh = await queue.getJob(job.id as string);
        expect(fresh?.attemptsMade, what).toBe(1);
        expect(fresh?.failedReason, what).toMatch(expected);
      }
      expect(await creates.stop()).toEqual([]);
    } finally {
      await queue.close();
    }
  });
});

describe('job spec honoured', () => {
  let dir: string;
  let policyDir: string;
  let policyPath: string;

  beforeAll(async () => {
    policyDir = await mkdtemp(join(tmpdir(), 'stevedore-spec-policy-'));
    dir = await mkdtemp(join(tmpdir(), 'stevedore-spec-'));
    // Tarballs from `dir` too, for the one that cannot be loaded.
    const policy = testPolicy();
    policyPath = await writePolicy(policyDir, {
      ...policy,
      imageTarballs: [...(policy.imageTarballs as object[]), { hostPath: dir }],
    });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
    await rm(policyDir, { recursive: true, force: true });
  });

  /** The test's worker, under the policy above, and a client. */
  async function specWorker() {
    await world.h.worker({ policyPath });
    return world.h.client();
  }

  it('passes env, working dir, mounts, stdin and resources to the container', async () => {
    await writeFile(join(dir, 'in.txt'), 'input file\n');
    const client = await specWorker();
    const { id } = await client.submit(
      busybox(
        [
          'sh',
          '-c',
          'echo "$GREETING $NAME"; pwd; cat /in/in.txt; cat > /out/stdin.txt; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; echo x > /in/nope || echo ro-ok',
        ],
        {
          env: { GREETING: 'hello', NAME: 'stevedore' },
          workingDir: '/tmp',
          mounts: { '/in': { hostPath: dir }, '/out': { hostPath: dir, readOnly: false } },
          stdin: { base64: Buffer.from('piped in').toString('base64') },
          resources: { ram: '64Mi', vcpus: 1 },
        },
      ),
    );
    const result = await client.waitForResult(id, { timeoutMs: 30_000 });
    expect(result.exitCode).toBe(0);
    expect(result.stdout.tail).toBe(`hello stevedore\n/tmp\ninput file\n${64 * 1024 * 1024}\nro-ok\n`);
    expect(await readFile(join(dir, 'stdin.txt'), 'utf8')).toBe('piped in');
  });

  it('reports a missing command as exit 127 with a clear message', async () => {
    const client = await specWorker();
    const { id } = await client.submit(busybox(['no-such-program'], { init: false }));
    const result = await client.waitForResult(id, { timeoutMs: 30_000 });
    expect(result).toMatchObject({ state: 'Complete', exitCode: 127 });
    expect(result.error?.message).toMatch(/starting: command not found.*no-such-program/);
    // Under the default init, the init says so on stderr.
    const init = await client.submit(busybox(['no-such-program']));
    const underInit = await client.waitForResult(init.id, { timeoutMs: 30_000 });
    expect(underInit).toMatchObject({ state: 'Complete', exitCode: 127 });
    expect(underInit.stderr.tail).toMatch(/no-such-program/);
  });

  it('fails a job whose image cannot be loaded as infra, retried, with a final result', async () => {
    const client = await specWorker();
    const broken = join(dir, 'broken.tar');
    await writeFile(broken, 'not a tarball');
    const { id } = await client.submit(
      { image: 'stevedore-test/missing:1', imageTarball: broken, command: ['true'] },
      { attempts: 2, backoff: 10 },
    );
    const result = await client.waitForResult(id, { timeoutMs: 30_000 });
    expect(result).toMatchObject({ state: 'Failed', reason: 'infra', attempt: 2 });
    expect(result.error?.phase).toBe('loading-image');
    expect(result.error?.message).toMatch(/loading-image: /);
  });
});
