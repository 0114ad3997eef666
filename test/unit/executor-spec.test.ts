import { text } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { parseJobSpec } from '../../src/jobs/spec.js';
import { describeSpec, toExecutorSpec } from '../../src/worker/run/executor-spec.js';
import { Sink } from '../helpers/streams.js';

describe('toExecutorSpec', () => {
  it('maps every field of a job spec, with this run’s output streams', async () => {
    const spec = parseJobSpec({
      image: 'img:1',
      command: ['sh', '-c', 'cat'],
      env: { A: '1' },
      workingDir: '/work',
      mounts: { '/in': { hostPath: '/srv/in' } },
      resources: { vcpus: 2, ram: '1Gi', gpus: { stack: 'rocm', count: 2 } },
      network: { enabled: true, mode: 'bridge' },
      stdin: { base64: Buffer.from('input').toString('base64') },
      init: false,
    });
    const [stdout, stderr] = [new Sink(), new Sink()];
    const mapped = toExecutorSpec(spec, stdout, stderr, { pidsLimit: 64 }, { jobId: 'j-1', attempt: 3 });
    expect(mapped).toMatchObject({
      image: 'img:1',
      command: ['sh', '-c', 'cat'],
      env: { A: '1', STEVEDORE_ATTEMPT: '3', STEVEDORE_JOB_ID: 'j-1' },
      workingDir: '/work',
      bindMounts: { '/in': { hostPath: '/srv/in', readOnly: true } },
      vcpus: 2,
      ramBytes: 1024 ** 3,
      enableNetwork: true,
      networkMode: 'bridge',
      gpu: { stack: 'rocm', deviceCount: 2 },
      init: false,
      pidsLimit: 64,
    });
    expect(mapped.stdout).toBe(stdout);
    expect(mapped.stderr).toBe(stderr);
    expect(mapped.stdin && (await text(mapped.stdin))).toBe('input');
  });

  it('says "no limit", no network and no stdin for a minimal spec', () => {
    const mapped = toExecutorSpec(
      parseJobSpec({ image: 'img:1', command: ['true'] }),
      new Sink(),
      new Sink(),
      { pidsLimit: 4096 },
      { jobId: 'j-1', attempt: 1 },
    );
    expect(mapped).toMatchObject({ vcpus: 0, ramBytes: 0, enableNetwork: false, bindMounts: {} });
    // Exactly the two variables Stevedore adds, and nothing else.
    expect(mapped.env).toEqual({ STEVEDORE_ATTEMPT: '1', STEVEDORE_JOB_ID: 'j-1' });
    expect(mapped.gpu).toBeUndefined();
    expect(mapped.stdin).toBeUndefined();
  });
});

describe('describeSpec', () => {
  it('names the env variables for events.log but never their values', () => {
    const described = describeSpec(
      parseJobSpec({ image: 'img:1', command: ['true'], env: { TOKEN: 's3cret' } }),
    );
    expect(described.envNames).toEqual(['TOKEN']);
    expect(JSON.stringify(described)).not.toContain('s3cret');
  });
});
