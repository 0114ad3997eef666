import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidSpecError } from '../../src/jobs/errors.js';
import { labelFilters } from '../../src/jobs/names.js';
import { testDocker } from '../helpers/docker.js';
import { watchCreates } from '../helpers/events.js';
import { TestRedis } from '../helpers/redis.js';
import { busybox, Harness } from '../helpers/stevedore.js';

const valid = { image: 'stevedore-test/busybox:1', command: ['true'] };

/** [what is wrong, the spec, the path and reason the message must name] */
const INVALID: [string, unknown, RegExp][] = [
  ['no image', { command: ['true'] }, /image: is required/],
  ['image not a string', { ...valid, image: 7 }, /image: .*string/i],
  ['empty image', { ...valid, image: '' }, /image: must not be empty/],
  ['image with spaces', { ...valid, image: 'a b' }, /image: must not contain whitespace/],
  ['no command', { image: 'x' }, /command: is required/],
  ['empty command', { ...valid, command: [] }, /command: must have at least one element/],
  ['command not an array', { ...valid, command: 'echo hi' }, /command: .*array/i],
  ['command with a number', { ...valid, command: ['echo', 1] }, /command\.1: .*string/i],
  ['empty program name', { ...valid, command: [''] }, /command: must not start with an empty program name/],
  ['relative working dir', { ...valid, workingDir: 'work' }, /workingDir: must be an absolute path/],
  [
    'working dir with ..',
    { ...valid, workingDir: '/a/../etc' },
    /workingDir: must not contain "\.\." segments/,
  ],
  ['relative tarball', { ...valid, imageTarball: 'img.tar' }, /imageTarball: must be an absolute path/],
  ['bad env name', { ...valid, env: { '1BAD': 'x' } }, /env\.1BAD: key is not a valid variable name/],
  ['env value not a string', { ...valid, env: { A: 1 } }, /env\.A: .*string/i],
  [
    'oversized env value',
    { ...valid, env: { BIG: 'x'.repeat(40_000) } },
    /env\.BIG: is longer than 32768 bytes/,
  ],
  [
    'relative mount host path',
    { ...valid, mounts: { '/in': { hostPath: 'data' } } },
    /mounts\.\/in\.hostPath: must be an absolute path/,
  ],
  [
    'relative mount target',
    { ...valid, mounts: { in: { hostPath: '/data' } } },
    /mounts\.in: key container path must be an absolute path/,
  ],
  ['mount onto /', { ...valid, mounts: { '/': { hostPath: '/data' } } }, /mounts\./],
  ['negative vcpus', { ...valid, resources: { vcpus: -1 } }, /resources\.vcpus: must be greater than 0/],
  ['absurd vcpus', { ...valid, resources: { vcpus: 1e6 } }, /resources\.vcpus: must be at most 1024/],
  [
    'zero ram',
    { ...valid, resources: { ram: 0 } },
    /resources\.ram: must be a positive whole number of bytes/,
  ],
  [
    'ram with a bad unit',
    { ...valid, resources: { ram: '12 parsecs' } },
    /resources\.ram: must be a byte count or a size/,
  ],
  ['absurd ram', { ...valid, resources: { ram: '900Ti' } }, /resources\.ram: must be at most 4Ti/],
  [
    'unknown gpu stack',
    { ...valid, resources: { gpus: { stack: 'metal', count: 1 } } },
    /resources\.gpus\.stack/,
  ],
  [
    'fractional gpu count',
    { ...valid, resources: { gpus: { stack: 'cuda', count: 1.5 } } },
    /resources\.gpus\.count: must be a whole number/,
  ],
  ['network enabled not boolean', { ...valid, network: { enabled: 'yes' } }, /network\.enabled: .*boolean/i],
  ['bad base64 stdin', { ...valid, stdin: { base64: '***' } }, /stdin\.base64: is not valid base64/],
  ['negative max run time', { ...valid, maxRunTimeSeconds: -5 }, /maxRunTimeSeconds: must be greater than 0/],
  ['negative stop grace', { ...valid, stopGraceSeconds: -1 }, /stopGraceSeconds: must not be negative/],
  ['unknown runtime', { ...valid, runtime: 'lxc' }, /runtime: /],
  ['unknown top-level field', { ...valid, imge: 'typo' }, /unknown field imge \(a typo\?\)/],
  ['unknown nested field', { ...valid, resources: { cpus: 2 } }, /resources: unknown field cpus/],
  ['not an object', 'echo hi', /\(spec\): .*object/i],
];

describe('job spec validation', () => {
  let redis: TestRedis;
  let h: Harness;

  beforeAll(async () => {
    redis = await TestRedis.start();
    h = new Harness(redis);
  });
  afterAll(async () => {
    await h.close();
    await redis.close();
  });

  it('the client lists every bad field at once', async () => {
    const error = await h
      .client()
      .submit({ image: '', command: [], resources: { vcpus: 0 }, extra: true } as never)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidSpecError);
    const message = (error as Error).message;
    expect(message).toMatch(/^invalid job spec \(4 problems\)/);
    for (const path of ['image', 'command', 'resources.vcpus', 'unknown field extra'])
      expect(message).toContain(path);
  });

  it.each(INVALID)('client rejects: %s', async (_what, spec, expected) => {
    await expect(h.client().submit(spec as never)).rejects.toThrow(expected);
  });

  it('a worker fails every invalid spec at once, unretried, with the same message and no container', async () => {
    await h.worker({ concurrency: 4 });
    const client = h.client();
    // Bypass the client's check, as a producer using BullMQ directly would.
    const queue = new Queue(h.queue, { connection: { host: '127.0.0.1', port: redis.port } });
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
  let redis: TestRedis;
  let h: Harness;
  let dir: string;

  beforeAll(async () => {
    redis = await TestRedis.start();
    h = new Harness(redis);
    await h.worker();
    dir = await mkdtemp(join(tmpdir(), 'stevedore-spec-'));
  });
  afterAll(async () => {
    await h.close();
    await redis.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('passes env, working dir, mounts, stdin and resources to the container', async () => {
    await writeFile(join(dir, 'in.txt'), 'input file\n');
    const client = h.client();
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
    const client = h.client();
    const { id } = await client.submit(busybox(['no-such-program']));
    const result = await client.waitForResult(id, { timeoutMs: 30_000 });
    expect(result).toMatchObject({ state: 'Complete', exitCode: 127 });
    expect(result.error?.message).toMatch(/starting: command not found.*no-such-program/);
  });

  it('fails a job whose image cannot be loaded as infra, retried, with a final result', async () => {
    const client = h.client();
    const { id } = await client.submit(
      { image: 'stevedore-test/missing:1', imageTarball: '/nonexistent.tar', command: ['true'] },
      { attempts: 2, backoff: 10 },
    );
    const result = await client.waitForResult(id, { timeoutMs: 30_000 });
    expect(result).toMatchObject({ state: 'Failed', reason: 'infra', attempt: 2 });
    expect(result.error?.phase).toBe('loading-image');
    expect(result.error?.message).toMatch(/cannot read image tarball \/nonexistent\.tar/);
  });
});
