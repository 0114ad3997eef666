import { mkdir, realpath, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Hostile job specs against a world of real host paths (symlinks included), each with the exact
 * message its refusal must carry. Shared by the policy's unit test and the hostile suite
 * (test/integration/hostile-suite.ts), which pushes the whole table through a real worker on
 * every runtime.
 */

export const HOSTILE_IMAGE = 'stevedore-test/busybox:1';
const BASE = { image: HOSTILE_IMAGE, command: ['true'] };
const DIGEST = `sha256:${'a'.repeat(64)}`;

export interface HostileWorld {
  root: string;
  stateDir: string;
  logDir: string;
  policyPath: string;
  /** Worker settings the table relies on beside the policy (the state and log dirs above, and these). */
  workerConfig: {
    stateDir: string;
    logDir: string;
    policyPath: string;
    registryAuth: { path: string; required: boolean };
    singularity: { sifCache: string };
  };
  /** The policy file's content. */
  policy: Record<string, unknown>;
  /** [what, job data, the exact error message] */
  table: [string, unknown, string][];
  /**
   * Specs that must be refused, whose message is only pinned to the field it names: [what, job
   * data, the field the message must name]. Paths the runtime owns, reached by another spelling.
   */
  refusedNaming: [string, unknown, string][];
  /** Allowed directories: read-only `data`, read-write `rw`, and `outside` (no prefix allows it). */
  dirs: { allowed: string; data: string; rw: string; outside: string };
}

export interface HostileWorldOptions {
  /** More allowed tarball prefixes (the suite's real image), beside the world's own. */
  tarballPrefixes?: string[];
}

const invalid = (path: string, message: string): string =>
  `invalid job spec (1 problem):\n  - ${path}: ${message}`;
/** A path in a message: as written, and what it resolves to when that differs. */
const shownAs = (written: string, real: string): string =>
  written === real ? written : `${written} (resolves to ${real})`;
const denied = (...messages: string[]): string => `denied by policy: ${messages.join('; ')}`;

/** Builds the world under `dir` (an empty directory) and the table that goes with it. */
export async function hostileWorld(dir: string, options: HostileWorldOptions = {}): Promise<HostileWorld> {
  const root = await realpath(dir);
  const allowed = join(root, 'allowed');
  const data = join(allowed, 'data');
  const rw = join(allowed, 'rw');
  const outside = join(root, 'outside');
  const other = join(root, 'allowed-other');
  const tarballs = join(root, 'tarballs');
  const stateDir = join(allowed, 'state');
  const logDir = join(stateDir, 'logs');
  const policyPath = join(allowed, 'policy.json');
  for (const d of [data, rw, outside, other, tarballs, join(root, 'tarballs-other'), logDir])
    await mkdir(d, { recursive: true });
  await writeFile(join(outside, 'evil.tar'), 'not an image');
  await writeFile(join(root, 'tarballs-other', 'evil.tar'), 'not an image');
  await symlink(outside, join(allowed, 'link-out'));
  await symlink('/etc', join(allowed, 'link-etc'));
  await symlink('/var/run/docker.sock', join(allowed, 'sock'));
  await symlink(data, join(rw, 'link-ro'));
  await symlink(join(outside, 'evil.tar'), join(tarballs, 'link.tar'));
  const socket = await realpath('/var/run/docker.sock');
  const run = await realpath('/var/run');
  const policy = {
    images: ['docker.io/library/busybox:*', 'stevedore-test/**'],
    mounts: [{ hostPath: allowed }, { hostPath: rw, readWrite: true }],
    imageTarballs: [
      { hostPath: tarballs },
      ...(options.tarballPrefixes ?? []).map((hostPath) => ({ hostPath })),
    ],
    resources: { maxVcpus: 2, maxRam: '256Mi', maxGpus: 0 },
    maxRunTimeSeconds: 3600,
    timeouts: { noOutputSeconds: { max: 600 } },
  };
  await writeFile(policyPath, JSON.stringify(policy));
  // Under an allowed prefix, as an operator may well put them: never allowed all the same.
  const registryAuth = join(allowed, 'docker', 'config.json');
  const sifCache = join(allowed, 'sif-cache');
  await mkdir(join(allowed, 'docker'));
  await mkdir(sifCache);
  await writeFile(registryAuth, JSON.stringify({ auths: {} }));
  const workerConfig = {
    stateDir,
    logDir,
    policyPath,
    registryAuth: { path: registryAuth, required: true },
    singularity: { sifCache },
  };

  const mount = (hostPath: string, readOnly = true, target = '/data') => ({
    ...BASE,
    mounts: { [target]: { hostPath, readOnly } },
  });
  const notUnder = (shown: string, target = '/data') =>
    denied(`mounts.${target}.hostPath ${shown} is not under an allowed host path`);
  const never = (shown: string, why: string) =>
    denied(`mounts./data.hostPath ${shown} is never allowed: it ${why}`);
  const tarball = (path: string) => ({ ...BASE, imageTarball: path });
  const images = 'docker.io/library/busybox:*, stevedore-test/**';
  const modes = 'not in networkModes (default, bridge)';
  const bigCommand = ['sh', ...Array.from({ length: 4000 }, () => 'x'.repeat(3500))];
  const bigSpec = { ...BASE, command: bigCommand };
  const manyEnv = Object.fromEntries(Array.from({ length: 6000 }, (_, i) => [`V${i}`, 'x']));
  let deep: unknown = 'bottom';
  for (let i = 0; i < 20; i++) deep = { nested: deep };
  const engineId = (image: string) =>
    denied(
      `image ${image} would be read by the engine as the id of an image it holds, which this worker's policy does not allow (allowImageIds): name the image by repository, with a tag or a digest`,
    );
  const kernelPath = (target: string, dir: string) =>
    denied(`mounts.${target} is never allowed as a container path: ${dir} belongs to the runtime`);
  const control = 'must not contain control characters (such as a newline)';

  const table: [string, unknown, string][] = [
    // Host paths: mounts
    ['the host root', mount('/'), never('/', 'is the host root /')],
    ['/etc', mount('/etc'), notUnder('/etc')],
    ['a prefix-boundary sibling', mount(other), notUnder(other)],
    [
      'a prefix-boundary sibling with a trailing /',
      mount(`${other}/`),
      notUnder(`${other}/ (resolves to ${other})`),
    ],
    [
      '.. out of an allowed dir',
      mount(`${allowed}/../outside`),
      invalid('mounts./data.hostPath', 'must not contain ".." segments'),
    ],
    ['// in the path', mount(`${root}//outside`), notUnder(`${root}//outside (resolves to ${outside})`)],
    ['a trailing /', mount(`${outside}/`), notUnder(`${outside}/ (resolves to ${outside})`)],
    [
      'a symlink escape',
      mount(join(allowed, 'link-out')),
      notUnder(`${allowed}/link-out (resolves to ${outside})`),
    ],
    [
      'a symlink to /etc',
      mount(join(allowed, 'link-etc')),
      notUnder(`${allowed}/link-etc (resolves to /etc)`),
    ],
    [
      'the engine socket under another path',
      mount(join(allowed, 'sock')),
      never(`${allowed}/sock (resolves to ${socket})`, `is the engine socket ${socket}`),
    ],
    [
      'the engine socket',
      mount('/var/run/docker.sock'),
      never(shownAs('/var/run/docker.sock', socket), `is the engine socket ${socket}`),
    ],
    [
      'the directory holding the engine socket',
      mount('/var/run'),
      never(shownAs('/var/run', run), `holds the engine socket ${socket}`),
    ],
    ["the worker's state dir", mount(stateDir), never(stateDir, `is the worker's state dir ${stateDir}`)],
    ["the worker's log dir", mount(logDir), never(logDir, `is inside the worker's state dir ${stateDir}`)],
    ['the policy file', mount(policyPath), never(policyPath, `is the policy file ${policyPath}`)],
    [
      'an allowed prefix that holds the state dir',
      mount(allowed),
      never(allowed, `holds the worker's state dir ${stateDir}`),
    ],
    [
      'read-write under a read-only prefix',
      mount(data, false),
      denied(
        `mounts./data.hostPath ${data} is read-write, but its allowed host path ${allowed} is read-only`,
      ),
    ],
    [
      'read-write through a link from a read-write prefix into a read-only one',
      mount(join(rw, 'link-ro'), false),
      denied(
        `mounts./data.hostPath ${rw}/link-ro (resolves to ${data}) is read-write, but its allowed host path ${allowed} is read-only`,
      ),
    ],
    [
      'a host path that does not exist',
      mount(join(allowed, 'missing')),
      denied(`mounts./data.hostPath ${allowed}/missing does not exist on the worker host`),
    ],
    // Container paths
    [
      'onto /proc',
      mount(data, true, '/proc'),
      denied('mounts./proc is never allowed as a container path: /proc belongs to the runtime'),
    ],
    [
      'onto /sys/fs/cgroup',
      mount(data, true, '/sys/fs/cgroup'),
      denied('mounts./sys/fs/cgroup is never allowed as a container path: /sys belongs to the runtime'),
    ],
    [
      'onto //proc/',
      mount(data, true, '//proc/'),
      denied('mounts.//proc/ is never allowed as a container path: /proc belongs to the runtime'),
    ],
    [
      'onto /dev',
      mount(data, true, '/dev'),
      denied('mounts./dev is never allowed as a container path: /dev belongs to the runtime'),
    ],
    [
      'onto /etc/resolv.conf',
      mount(data, true, '/etc/resolv.conf'),
      denied(
        'mounts./etc/resolv.conf is never allowed as a container path: /etc/resolv.conf belongs to the runtime',
      ),
    ],
    // Network
    [
      'host network',
      { ...BASE, network: { enabled: true, mode: 'host' } },
      denied(`network.mode "host" is ${modes}`),
    ],
    [
      "another container's namespace",
      { ...BASE, network: { enabled: true, mode: 'container:abc123' } },
      denied(`network.mode "container:abc123" is ${modes}`),
    ],
    [
      'HOST in capitals',
      { ...BASE, network: { enabled: true, mode: 'HOST' } },
      denied(`network.mode "HOST" is ${modes}`),
    ],
    // Cgroup parent: not a spec field at all
    [
      'a cgroup parent',
      { ...BASE, cgroupParent: '/' },
      invalid('(spec)', 'unknown field cgroupParent (a typo?)'),
    ],
    [
      'a cgroup parent under resources',
      { ...BASE, resources: { cgroupParent: '../../system.slice' } },
      invalid('resources', 'unknown field cgroupParent (a typo?)'),
    ],
    // Images
    [
      'an upper-case image',
      { ...BASE, image: 'BusyBox:1' },
      denied(`image BusyBox:1 matches none of the allowed images (${images})`),
    ],
    [
      'an image by digest',
      { ...BASE, image: `busybox@${DIGEST}` },
      denied(`image busybox@${DIGEST} matches none of the allowed images (${images})`),
    ],
    [
      'an image from a registry with a port',
      { ...BASE, image: 'evil.example:5000/stevedore-test/busybox:1' },
      denied(
        `image evil.example:5000/stevedore-test/busybox:1 matches none of the allowed images (${images})`,
      ),
    ],
    [
      'an image from localhost',
      { ...BASE, image: 'localhost/stevedore-test/busybox:1' },
      denied(`image localhost/stevedore-test/busybox:1 matches none of the allowed images (${images})`),
    ],
    [
      'an image with a space',
      { ...BASE, image: 'busybox :1' },
      invalid('image', 'must not contain whitespace'),
    ],
    [
      'an image with a newline',
      { ...BASE, image: 'busybox:1\n' },
      invalid('image', 'must not contain whitespace'),
    ],
    // Tarballs
    [
      'a tarball outside the prefixes',
      tarball(join(outside, 'evil.tar')),
      denied(`imageTarball ${outside}/evil.tar is not under an allowed tarball path`),
    ],
    [
      'a tarball in a prefix-boundary sibling',
      tarball(join(root, 'tarballs-other', 'evil.tar')),
      denied(`imageTarball ${root}/tarballs-other/evil.tar is not under an allowed tarball path`),
    ],
    [
      'a tarball through a symlink out',
      tarball(join(tarballs, 'link.tar')),
      denied(
        `imageTarball ${tarballs}/link.tar (resolves to ${outside}/evil.tar) is not under an allowed tarball path`,
      ),
    ],
    [
      '/etc/passwd as a tarball',
      tarball('/etc/passwd'),
      denied('imageTarball /etc/passwd is not under an allowed tarball path'),
    ],
    [
      'a tarball that does not exist',
      tarball(join(tarballs, 'missing.tar')),
      denied(`imageTarball ${tarballs}/missing.tar does not exist on the worker host`),
    ],
    [
      'a tarball with ..',
      tarball(`${tarballs}/../outside/evil.tar`),
      invalid('imageTarball', 'must not contain ".." segments'),
    ],
    // Resources and run time
    [
      'vcpus over the max',
      { ...BASE, resources: { vcpus: 4 } },
      denied('resources.vcpus 4 is over maxVcpus 2'),
    ],
    [
      'ram over the max',
      { ...BASE, resources: { ram: '1Gi' } },
      denied('resources.ram 1073741824 bytes is over maxRam 268435456 bytes'),
    ],
    [
      'gpus over the max',
      { ...BASE, resources: { gpus: { stack: 'cuda', count: 1 } } },
      denied('resources.gpus.count 1 is over maxGpus 0'),
    ],
    [
      'run time over the cap',
      { ...BASE, maxRunTimeSeconds: 7200 },
      denied("maxRunTimeSeconds 7200 is over the policy's cap 3600 (timeouts.runSeconds.max)"),
    ],
    [
      'no-output timeout over the cap',
      { ...BASE, timeouts: { noOutputSeconds: 601 } },
      denied("timeouts.noOutputSeconds 601 is over the policy's cap 600 (timeouts.noOutputSeconds.max)"),
    ],
    [
      'negative ram',
      { ...BASE, resources: { ram: -1 } },
      invalid('resources.ram', 'must be a positive whole number of bytes'),
    ],
    [
      'absurd ram as text',
      { ...BASE, resources: { ram: '1e30' } },
      invalid('resources.ram', 'must be a byte count or a size such as "512Mi" or "2Gi"'),
    ],
    [
      'absurd ram as a number',
      { ...BASE, resources: { ram: 1e30 } },
      invalid('resources.ram', 'must be at most 4Ti (4398046511104 bytes)'),
    ],
    [
      'a negative gpu count',
      { ...BASE, resources: { gpus: { stack: 'cuda', count: -1 } } },
      invalid('resources.gpus.count', 'must be at least 1'),
    ],
    // Whole specs
    [
      'an oversized spec',
      bigSpec,
      invalid(
        '(spec)',
        `is ${Buffer.byteLength(JSON.stringify(bigSpec))} bytes as JSON, more than the 12582912 a spec may be`,
      ),
    ],
    [
      'a spec of too many strings',
      { ...BASE, env: manyEnv },
      invalid('(spec)', 'has more than 10000 strings (keys and values)'),
    ],
    ['a deeply nested spec', { ...BASE, labels: deep }, invalid('(spec)', 'is nested deeper than 16 levels')],
    // Job data that is no object
    ['null data', null, invalid('(spec)', 'must be an object, not null')],
    ['array data', [BASE], invalid('(spec)', 'must be an object, not array')],
    ['number data', 42, invalid('(spec)', 'must be an object, not number')],
    ['boolean data', true, invalid('(spec)', 'must be an object, not boolean')],
    // Every broken rule at once
    [
      'several rules at once',
      { ...mount('/etc'), network: { enabled: true, mode: 'host' }, resources: { vcpus: 3 } },
      denied(
        'mounts./data.hostPath /etc is not under an allowed host path',
        `network.mode "host" is ${modes}`,
        'resources.vcpus 3 is over maxVcpus 2',
      ),
    ],
    // Container paths as the engine reads them: Docker takes `/./dev` for `/dev`
    ['onto /./dev', mount(data, true, '/./dev'), kernelPath('/./dev', '/dev')],
    [
      'onto /sys/./fs/cgroup/.',
      mount(data, true, '/sys/./fs/cgroup/.'),
      kernelPath('/sys/./fs/cgroup/.', '/sys'),
    ],
    ['onto /etc/./hosts', mount(data, true, '/etc/./hosts'), kernelPath('/etc/./hosts', '/etc/hosts')],
    [
      "onto the container's root as /.",
      mount(data, true, '/.'),
      denied("mounts./. is never allowed as a container path: it is the container's root /"),
    ],
    [
      'one container path written twice',
      { ...BASE, mounts: { '/data': { hostPath: data }, '/./data/': { hostPath: rw, readOnly: false } } },
      denied('mounts././data/ is the same container path as mounts./data (/data)'),
    ],
    // Working dirs in the kernel's file systems (/proc/self/fd/N: runc CVE-2024-21626)
    [
      'a working dir in /proc/self/fd',
      { ...BASE, workingDir: '/proc/self/fd/7' },
      denied('workingDir /proc/self/fd/7 is never allowed: /proc belongs to the runtime'),
    ],
    [
      'a working dir in /sys written with // and .',
      { ...BASE, workingDir: '//sys/./kernel' },
      denied('workingDir //sys/./kernel is never allowed: /sys belongs to the runtime'),
    ],
    [
      'a working dir of /dev/',
      { ...BASE, workingDir: '/dev/' },
      denied('workingDir /dev/ is never allowed: /dev belongs to the runtime'),
    ],
    // Control characters in paths: no runtime carries them
    [
      'a newline in a container path',
      mount(data, true, '/data\n/x'),
      invalid('mounts."/data\\n/x"', `key container path ${control}`),
    ],
    ['a newline in a host path', mount(`${data}\n`), invalid('mounts./data.hostPath', control)],
    ['a tab in a working dir', { ...BASE, workingDir: '/work\tdir' }, invalid('workingDir', control)],
    ['an escape in a tarball path', tarball(`${tarballs}/\u001b[2J.tar`), invalid('imageTarball', control)],
    // Images by engine id, and a digest behind a tag
    [
      'an image by engine id',
      { ...BASE, image: `sha256:${'b'.repeat(64)}` },
      engineId(`sha256:${'b'.repeat(64)}`),
    ],
    [
      'an image by a short engine id, never pulled',
      { ...BASE, image: '3f57d9401f8d', imagePullPolicy: 'never' },
      engineId('3f57d9401f8d'),
    ],
    [
      'a tag glob given a tag and a digest',
      { ...BASE, image: `busybox:1@${DIGEST}` },
      denied(`image busybox:1@${DIGEST} matches none of the allowed images (${images})`),
    ],
    // More paths no job may touch, under an allowed prefix or not
    [
      'the registry credentials file',
      mount(registryAuth),
      never(registryAuth, `is the registry credentials file ${registryAuth}`),
    ],
    ['the SIF cache', mount(sifCache), never(sifCache, `is the SIF cache ${sifCache}`)],
    [
      "a directory holding the engine's data root",
      mount('/var/lib'),
      never('/var/lib', 'holds the engine data root /var/lib/docker'),
    ],
    // Millions of elements: refused after counting to the limit (the next job runs as usual)
    [
      'six million numbers',
      { ...BASE, command: new Array(6_000_000).fill(0) },
      invalid('(spec)', 'has more than 20000 elements (array items and object fields)'),
    ],
  ];
  const refusedNaming: [string, unknown, string][] = [
    // Docker cleans a mount target before binding it: /./dev replaces the container's /dev.
    ['onto /./dev', mount(data, true, '/./dev'), 'mounts././dev'],
    ['onto /dev/./', mount(data, true, '/dev/./'), 'mounts./dev/./'],
    ['onto /./proc/self', mount(data, true, '/./proc/self'), 'mounts././proc/self'],
    // runc CVE-2024-21626: a working dir through a leaked fd is the host's.
    ['a working dir in /proc/self/fd', { ...BASE, workingDir: '/proc/self/fd/3' }, 'workingDir'],
    ['a working dir in /proc/./self/cwd', { ...BASE, workingDir: '/proc/./self/cwd' }, 'workingDir'],
    ['a working dir in /sys', { ...BASE, workingDir: '/sys/fs/cgroup' }, 'workingDir'],
    ['a working dir in /dev', { ...BASE, workingDir: '/dev' }, 'workingDir'],
  ];
  return {
    root,
    stateDir,
    logDir,
    policyPath,
    workerConfig,
    policy,
    table,
    refusedNaming,
    dirs: { allowed, data, rw, outside },
  };
}
