import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/worker.js';
import { InvalidSpecError } from '../../src/jobs/errors.js';
import { parseJobSpec } from '../../src/jobs/spec.js';
import { checkPolicy, deniedMessage, hostPathsOf, type PolicyFacts } from '../../src/policy/check.js';
import type { NeverAllowed } from '../../src/policy/host-paths.js';
import { parsePolicy } from '../../src/policy/policy.js';
import { pathFacts } from '../../src/worker/path-facts.js';
import { engineDataPaths, loadWorkerPolicy, neverAllowedPaths } from '../../src/worker/policy-load.js';
import { type HostileWorld, hostileWorld } from '../helpers/hostile-specs.js';

/** The message a worker would fail `data` with under the world's policy, or null when it runs. */
async function refusal(world: HostileWorld, never: NeverAllowed[], data: unknown): Promise<string | null> {
  let spec: ReturnType<typeof parseJobSpec>;
  try {
    spec = parseJobSpec(data);
  } catch (error) {
    if (error instanceof InvalidSpecError) return error.message;
    throw error;
  }
  const facts: PolicyFacts = { paths: await pathFacts(hostPathsOf(spec)), neverAllowed: never };
  const { denials } = checkPolicy(spec, parsePolicy(world.policy, 'test'), facts);
  return denials.length > 0 ? deniedMessage(denials) : null;
}

describe('the policy check against hostile specs', () => {
  let dir: string;
  let world: HostileWorld;
  let never: NeverAllowed[];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stevedore-hostile-'));
    world = await hostileWorld(dir);
    never = await neverAllowedPaths({ ...loadConfig({}), ...world.workerConfig });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('has at least 40 of them', () => {
    expect(world.table.length).toBeGreaterThanOrEqual(40);
  });

  it('refuses each with its exact message', async () => {
    for (const [what, data, expected] of world.table) {
      expect(await refusal(world, never, data), what).toBe(expected);
    }
  });

  it('refuses a runtime-owned path by another spelling, naming the field', async () => {
    const wrong: string[] = [];
    for (const [what, data, field] of world.refusedNaming) {
      const message = await refusal(world, never, data);
      const named = /^(denied by policy|invalid job spec)/.test(message ?? '') && message?.includes(field);
      if (!named) wrong.push(`${what}: ${message ?? 'allowed'}`);
    }
    expect(wrong).toEqual([]);
  });
});

describe('the policy check on what it allows', () => {
  let dir: string;
  const none: NeverAllowed[] = [{ path: '/', what: 'the host root' }];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stevedore-allowed-'));
    await mkdir(join(dir, 'srv', 'scratch', 'job'), { recursive: true });
    await mkdir(join(dir, 'srv', 'ro'), { recursive: true });
    await symlink(join(dir, 'srv', 'scratch', 'job'), join(dir, 'srv', 'ro', 'to-scratch'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const check = async (policy: unknown, data: unknown) => {
    const spec = parseJobSpec(data);
    return checkPolicy(spec, parsePolicy(policy, 'test'), {
      paths: await pathFacts(hostPathsOf(spec)),
      neverAllowed: none,
    });
  };

  it('applies the defaults: ram 1 GiB, no vcpu limit, run time 24 h; a value the spec names stays', async () => {
    const bare = await check(undefined, { image: 'busybox', command: ['true'] });
    expect(bare.denials).toEqual([]);
    expect(bare.spec.resources).toEqual({ ram: 1024 ** 3, vcpus: undefined });
    expect(bare.spec.maxRunTimeSeconds).toBe(24 * 3600);
    const named = await check(
      { resources: { defaultVcpus: 1, defaultRam: '128Mi' } },
      { image: 'busybox', command: ['true'], resources: { ram: '64Mi' }, maxRunTimeSeconds: 5 },
    );
    expect(named.spec.resources).toEqual({ ram: 64 * 1024 ** 2, vcpus: 1 });
    expect(named.spec.maxRunTimeSeconds).toBe(5);
  });

  it('lowers the shipped default ram to maxRam when that is smaller', () => {
    expect(parsePolicy({ resources: { maxRam: '256Mi' } }, 'test').resources.defaultRam).toBe(
      256 * 1024 ** 2,
    );
  });

  it('by default denies every host mount and tarball, and host networking', async () => {
    const { denials } = await check(undefined, {
      image: 'busybox',
      imageTarball: join(dir, 'srv', 'ro'),
      command: ['true'],
      mounts: { '/d': { hostPath: join(dir, 'srv') } },
      network: { enabled: true, mode: 'host' },
    });
    expect(denials.map((d) => d.field)).toEqual(['imageTarball', 'mounts./d.hostPath', 'network.mode']);
  });

  it('lets the longest prefix win, and binds the resolved path, not the link', async () => {
    const policy = {
      mounts: [
        { hostPath: join(dir, 'srv') },
        { hostPath: `${join(dir, 'srv', 'scratch')}/`, readWrite: true },
      ],
    };
    const link = join(dir, 'srv', 'ro', 'to-scratch');
    const { denials, spec } = await check(policy, {
      image: 'busybox',
      command: ['true'],
      mounts: { '/out': { hostPath: link, readOnly: false }, '/in': { hostPath: join(dir, 'srv', 'ro') } },
    });
    expect(denials).toEqual([]);
    expect(spec.mounts['/out']).toEqual({ hostPath: join(dir, 'srv', 'scratch', 'job'), readOnly: false });
  });

  it('matches images as written or in canonical form, and network modes by glob when listed', async () => {
    const policy = {
      images: ['docker.io/library/python:3.*', 'busybox:*'],
      networkModes: ['default', 'container:*'],
    };
    for (const image of [
      'python:3.12',
      'docker.io/library/python:3.12',
      'busybox:1.36',
      'index.docker.io/library/python:3.11',
    ]) {
      expect((await check(policy, { image, command: ['true'] })).denials, image).toEqual([]);
    }
    expect((await check(policy, { image: 'python:2.7', command: ['true'] })).denials).toHaveLength(1);
    // `*` stays within one path segment; `**` crosses them.
    expect(
      (await check({ images: ['team/*'] }, { image: 'team/a/b', command: ['true'] })).denials,
    ).toHaveLength(1);
    expect((await check({ images: ['team/**'] }, { image: 'team/a/b', command: ['true'] })).denials).toEqual(
      [],
    );
    const joined = await check(policy, {
      image: 'busybox:1',
      command: ['true'],
      network: { enabled: true, mode: 'container:abc' },
    });
    expect(joined.denials).toEqual([]);
  });
});

describe('images by digest and by engine id', () => {
  const digest = `sha256:${'c'.repeat(64)}`;
  const denialsFor = (policy: unknown, image: string) => {
    const spec = parseJobSpec({ image, command: ['true'] });
    return checkPolicy(spec, parsePolicy(policy, 'test'), { paths: new Map(), neverAllowed: [] }).denials;
  };

  it('a tag glob allows no digest: the engine runs the digest whatever the tag says', () => {
    for (const image of [
      `busybox:1@${digest}`,
      `busybox@${digest}`,
      `docker.io/library/busybox:1@${digest}`,
    ]) {
      expect(denialsFor({ images: ['busybox:*'] }, image), image).toHaveLength(1);
      expect(denialsFor({ images: ['docker.io/library/busybox:*'] }, image), image).toHaveLength(1);
      expect(denialsFor({ images: ['docker.io/library/*'] }, image), image).toHaveLength(1);
    }
    // A pinned tag says nothing of the digest either.
    expect(denialsFor({ images: ['busybox:1.36'] }, `busybox:1.36@${digest}`)).toHaveLength(1);
    expect(denialsFor({ images: ['busybox:*'] }, 'busybox:1.36')).toEqual([]);
  });

  it('a pattern that names the digest allows it, with or without a tag; ** allows any', () => {
    for (const pattern of [
      `busybox@${digest}`,
      'busybox@sha256:*',
      `docker.io/library/busybox@${digest}`,
      '**',
    ]) {
      for (const image of [`busybox@${digest}`, `busybox:1@${digest}`]) {
        expect(denialsFor({ images: [pattern] }, image), `${pattern} ${image}`).toEqual([]);
      }
    }
    // Tag and digest each as the pattern says.
    expect(denialsFor({ images: ['busybox:1@sha256:*'] }, `busybox:1@${digest}`)).toEqual([]);
    expect(denialsFor({ images: ['busybox:1@sha256:*'] }, `busybox:2@${digest}`)).toHaveLength(1);
    expect(denialsFor({ images: [`busybox@${digest}`] }, `busybox@sha256:${'d'.repeat(64)}`)).toHaveLength(1);
  });

  it('refuses an engine id unless allowImageIds, and then only one a pattern matches', () => {
    const ids = [`sha256:${'e'.repeat(64)}`, 'sha256:e3b0c4', 'e3b0c44298fc', 'cafe'];
    for (const image of ids) {
      expect(
        denialsFor(undefined, image).map((d) => d.message),
        image,
      ).toEqual([
        `image ${image} would be read by the engine as the id of an image it holds, which this worker's policy does not allow (allowImageIds): name the image by repository, with a tag or a digest`,
      ]);
      expect(denialsFor({ allowImageIds: true }, image), image).toEqual([]);
      expect(denialsFor({ allowImageIds: true, images: ['busybox:*'] }, image), image).toHaveLength(1);
    }
    expect(denialsFor({ allowImageIds: true, images: ['sha256:*'] }, ids[0] as string)).toEqual([]);
    // With a tag, a registry or a path it is a name, which the engine never reads as an id.
    for (const image of ['cafe:1', 'docker.io/library/cafe', 'team/cafe']) {
      expect(denialsFor(undefined, image), image).toEqual([]);
    }
  });
});

describe('container paths and the working dir', () => {
  const run = (data: Record<string, unknown>) =>
    checkPolicy(
      parseJobSpec({ image: 'busybox', command: ['true'], ...data }),
      parsePolicy({ mounts: [{ hostPath: '/srv' }] }, 'test'),
      {
        paths: new Map([['/srv', { kind: 'real', path: '/srv' }]]),
        neverAllowed: [],
      },
    );

  it('pass on normalized, so the executors never see `.`, `//` or a trailing /', () => {
    const { spec, denials } = run({
      workingDir: '//work/./dir/',
      mounts: { '/./in//x/': { hostPath: '/srv' } },
    });
    expect(denials).toEqual([]);
    expect(spec.workingDir).toBe('/work/dir');
    expect(Object.keys(spec.mounts)).toEqual(['/in/x']);
  });

  it('refuse the kernel file systems as a working dir, however written, and allow their look-alikes', () => {
    for (const workingDir of ['/proc', '/proc/self/fd/7', '/./dev/shm', '//sys/', '/sys/.']) {
      expect(
        run({ workingDir }).denials.map((d) => d.field),
        workingDir,
      ).toEqual(['workingDir']);
    }
    for (const workingDir of ['/procedure', '/devices', '/work/proc', '/etc/hosts.d']) {
      expect(run({ workingDir }).denials, workingDir).toEqual([]);
    }
  });
});

describe('the never-allowed paths', () => {
  it('include the engine socket DOCKER_HOST names, as written and resolved', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stevedore-sock-'));
    try {
      await mkdir(join(dir, 'real'));
      await writeFile(join(dir, 'real', 'engine.sock'), '');
      await symlink(join(dir, 'real'), join(dir, 'run'));
      const written = join(dir, 'run', 'engine.sock');
      const never = await neverAllowedPaths({ ...loadConfig({}), dockerHost: `unix://${written}` });
      expect(never).toEqual(
        expect.arrayContaining([
          { path: written, what: 'the engine socket' },
          { path: join(dir, 'real', 'engine.sock'), what: 'the engine socket' },
        ]),
      );
      const spec = parseJobSpec({
        image: 'busybox',
        command: ['true'],
        mounts: { '/s': { hostPath: join(dir, 'real') } },
      });
      const { denials } = checkPolicy(spec, parsePolicy({ mounts: [{ hostPath: dir }] }, 'test'), {
        paths: await pathFacts(hostPathsOf(spec)),
        neverAllowed: never,
      });
      expect(deniedMessage(denials)).toBe(
        `denied by policy: mounts./s.hostPath ${dir}/real is never allowed: it holds the engine socket ${dir}/real/engine.sock`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('GPUs', () => {
  const gpuSpec = (stack: 'cuda' | 'rocm', count: number) =>
    parseJobSpec({ image: 'busybox', command: ['true'], resources: { gpus: { stack, count } } });

  it('a count over maxGpus is denied, and one over the devices the worker lists too', () => {
    const check = (count: number, gpus?: { cuda?: number; rocm?: number }) =>
      checkPolicy(gpuSpec('cuda', count), parsePolicy({ resources: { maxGpus: 2 } }, 'test'), {
        paths: new Map(),
        neverAllowed: [],
        gpus,
      }).denials.map((d) => d.message);
    expect(check(2)).toEqual([]);
    expect(check(3)).toEqual(['resources.gpus.count 3 is over maxGpus 2']);
    expect(check(2, { cuda: 1 })).toEqual([
      'resources.gpus.count 2 is more than the 1 cuda GPU this worker hands out (CUDA_VISIBLE_DEVICES)',
    ]);
    expect(check(2, { rocm: 1 })).toEqual([]);
  });

  it('the worker counts its CUDA_VISIBLE_DEVICES and AMD_VISIBLE_DEVICES into the check', async () => {
    const policy = await loadWorkerPolicy(
      loadConfig({ CUDA_VISIBLE_DEVICES: '0, 2', AMD_VISIBLE_DEVICES: '1', HOME: '/home/w' }),
    );
    expect((await policy.check(gpuSpec('cuda', 2))).denials).toEqual([]);
    expect((await policy.check(gpuSpec('cuda', 3))).denials.map((d) => d.message)).toEqual([
      'resources.gpus.count 3 is more than the 2 cuda GPUs this worker hands out (CUDA_VISIBLE_DEVICES)',
    ]);
    expect((await policy.check(gpuSpec('rocm', 2))).denials.map((d) => d.message)).toEqual([
      'resources.gpus.count 2 is more than the 1 rocm GPU this worker hands out (AMD_VISIBLE_DEVICES)',
    ]);
    const unlisted = await loadWorkerPolicy(loadConfig({ HOME: '/home/w' }));
    expect((await unlisted.check(gpuSpec('cuda', 8))).denials).toEqual([]);
  });
});

describe('retry budgets', () => {
  const denials = (retry: unknown, policy: unknown = { retry: { maxLimit: 3, maxInfraLimit: 4 } }) =>
    checkPolicy(parseJobSpec({ image: 'busybox', command: ['true'], retry }), parsePolicy(policy, 'test'), {
      paths: new Map(),
      neverAllowed: [],
    }).denials.map((d) => d.message);

  it('a limit, a rule’s own limit or an infraLimit over the cap is denied, naming field and cap', () => {
    expect(
      denials({ limit: 3, infraLimit: 4, rules: [{ onExitCodes: [1], action: 'retry', limit: 3 }] }),
    ).toEqual([]);
    expect(
      denials({ limit: 4, infraLimit: 5, rules: [{ onExitCodes: [1], action: 'retry', limit: 9 }] }),
    ).toEqual([
      "retry.limit 4 is over the policy's cap retry.maxLimit 3",
      "retry.infraLimit 5 is over the policy's cap retry.maxInfraLimit 4",
      "retry.rules[0].limit 9 is over the policy's cap retry.maxLimit 3",
    ]);
  });

  it('caps at 10 by default, and a job without retry is never denied for it', () => {
    expect(denials({ limit: 11 }, {})).toEqual(["retry.limit 11 is over the policy's cap retry.maxLimit 10"]);
    expect(denials(undefined, { retry: { maxLimit: 0, maxInfraLimit: 0 } })).toEqual([]);
  });
});

describe('the never-allowed paths the worker knows of', () => {
  it("include its credentials, keys, caches, TLS files, the engines' data roots and every engine socket", async () => {
    const never = await neverAllowedPaths({
      ...loadConfig({}),
      trustedKeysDir: '/etc/stevedore/keys',
      registryAuth: { path: '/etc/stevedore/registry.json', required: true },
      singularity: { sifCache: '/srv/sif' },
      redisTls: { ca: '/etc/tls/ca.pem', cert: '/etc/tls/cert.pem', key: '/etc/tls/key.pem' },
      podmanSocket: '/run/user/1000/podman/podman.sock',
    });
    expect(never).toEqual(
      expect.arrayContaining([
        { path: '/etc/stevedore/keys', what: 'the trusted-keys directory' },
        { path: '/etc/stevedore/registry.json', what: 'the registry credentials file' },
        { path: '/srv/sif', what: 'the SIF cache' },
        { path: '/etc/tls/ca.pem', what: 'the Redis TLS CA file' },
        { path: '/etc/tls/cert.pem', what: 'the Redis TLS certificate' },
        { path: '/etc/tls/key.pem', what: 'the Redis TLS key' },
        { path: '/var/lib/docker', what: 'the engine data root' },
        { path: '/run/docker', what: 'the engine data root' },
        { path: '/var/lib/containers', what: 'the engine data root' },
        { path: '/run/containers', what: 'the engine data root' },
        { path: '/var/lib/containerd', what: 'the engine data root' },
        { path: '/run/user/1000/podman/podman.sock', what: 'the engine socket' },
        { path: '/run/podman/podman.sock', what: 'the engine socket' },
        { path: '/run/containerd/containerd.sock', what: 'the engine socket' },
      ]),
    );
    // The default credentials file too, where Docker's own tools keep it.
    const defaults = await neverAllowedPaths(loadConfig({ HOME: '/home/w' }));
    expect(defaults).toContainEqual({
      path: '/home/w/.docker/config.json',
      what: 'the registry credentials file',
    });
  });

  it('add where the runtime in use keeps its data, as written and resolved, and go on without it when it does not say', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stevedore-root-'));
    try {
      await mkdir(join(dir, 'real'));
      await symlink(join(dir, 'real'), join(dir, 'root'));
      const log = pino({ level: 'silent' });
      const said = await engineDataPaths({ kind: 'docker', dataPaths: async () => [join(dir, 'root')] }, log);
      expect(said).toEqual([
        { path: join(dir, 'root'), what: 'the docker data root' },
        { path: join(dir, 'real'), what: 'the docker data root' },
      ]);
      const silent = await engineDataPaths(
        {
          kind: 'podman',
          dataPaths: async () => {
            throw new Error('no answer');
          },
        },
        log,
      );
      expect(silent).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the policy file', () => {
  it('names an unknown key, at any depth', () => {
    expect(() => parsePolicy({ mount: [] }, 'p.yaml')).toThrow(
      'policy p.yaml is invalid: (policy): unknown key mount',
    );
    expect(() => parsePolicy({ resources: { maxCpus: 2 } }, 'p.yaml')).toThrow(
      'policy p.yaml is invalid: resources: unknown key maxCpus',
    );
    expect(() => parsePolicy({ mounts: [{ hostPath: '/srv', rw: true }] }, 'p.yaml')).toThrow(
      'policy p.yaml is invalid: mounts.0: unknown key rw',
    );
  });

  it('names a bad value', () => {
    expect(() => parsePolicy({ mounts: [{ hostPath: 'srv' }] }, 'p')).toThrow(
      'mounts.0.hostPath: must be an absolute path (start with /)',
    );
    expect(() => parsePolicy({ resources: { maxRam: 'lots' } }, 'p')).toThrow(
      'resources.maxRam: must be a positive byte count such as 1073741824 or "1Gi"',
    );
    expect(() => parsePolicy({ pidsLimit: 0 }, 'p')).toThrow('pidsLimit:');
    expect(() => parsePolicy({ resources: { maxRam: '1Gi', defaultRam: '2Gi' } }, 'p')).toThrow(
      'resources.defaultRam: is above resources.maxRam (1073741824)',
    );
    expect(() => parsePolicy({ resources: { maxVcpus: 1, defaultVcpus: 2 } }, 'p')).toThrow(
      'resources.defaultVcpus: is above resources.maxVcpus (1)',
    );
  });

  it('has safe defaults, and exposes pidsLimit and maxOutputBytes plainly', () => {
    expect(parsePolicy(undefined, 'none')).toEqual({
      images: ['**'],
      allowImageIds: false,
      mounts: [],
      imageTarballs: [],
      networkModes: ['default', 'bridge'],
      resources: { defaultRam: 1024 ** 3 },
      // Only the run timeout has a default: a job without one is never stopped for silence or a wait.
      timeouts: {
        queueSeconds: {},
        imageSeconds: {},
        startSeconds: {},
        runSeconds: { max: 86_400, default: 86_400 },
        noOutputSeconds: {},
      },
      pidsLimit: 4096,
      maxOutputBytes: 1024 ** 3,
      retry: { maxLimit: 10, maxInfraLimit: 10 },
      gateway: { exec: true, forward: true, execUsers: null },
    });
    expect(parsePolicy({ pidsLimit: 100, maxOutputBytes: '10Mi' }, 'p')).toMatchObject({
      pidsLimit: 100,
      maxOutputBytes: 10 * 1024 ** 2,
    });
  });

  it('reads the gateway section: exec and forward allowed unless said, users as listed', () => {
    expect(parsePolicy({ gateway: { forward: false } }, 'p').gateway).toEqual({
      exec: true,
      forward: false,
      execUsers: null,
    });
    expect(parsePolicy({ gateway: { execUsers: ['1000', 'app'] } }, 'p').gateway.execUsers).toEqual([
      '1000',
      'app',
    ]);
    expect(() => parsePolicy({ gateway: { shell: true } }, 'p')).toThrow('gateway: unknown key shell');
    expect(() => parsePolicy({ gateway: { exec: 'yes' } }, 'p')).toThrow('gateway.exec');
  });

  it('normalizes prefixes: // and a trailing / go', () => {
    expect(parsePolicy({ mounts: [{ hostPath: '//srv//data/' }] }, 'p').mounts).toEqual([
      { hostPath: '/srv/data', readWrite: false },
    ]);
  });
});
