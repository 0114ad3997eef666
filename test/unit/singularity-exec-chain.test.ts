import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { capabilityNames } from '../../src/executors/singularity/capabilities.js';
import {
  DEFAULT_EXEC_PATH,
  type ExecChainFacts,
  envLines,
  execChain,
  STAGE_A,
  STAGE_B,
  shellQuote,
} from '../../src/executors/singularity/exec-chain.js';
import { isStaticElf } from '../../src/executors/singularity/exec-tools.js';

const JOB_CAPS = [
  'chown',
  'dac_override',
  'fowner',
  'fsetid',
  'kill',
  'setgid',
  'setuid',
  'net_bind_service',
];

const facts: ExecChainFacts = {
  tools: {
    sh: '/usr/bin/sh',
    setpriv: '/usr/bin/setpriv',
    nsenter: '/usr/bin/nsenter',
    script: '/usr/bin/script',
    stty: '/usr/bin/stty',
    busyboxDir: '/usr/bin',
  },
  pid: 4242,
  cgroupProcs: [
    '/sys/fs/cgroup/pids/stevedore/j/cgroup.procs',
    '/sys/fs/cgroup/memory/stevedore/j/cgroup.procs',
  ],
  uid: 0,
  gid: 0,
  inheritable: JOB_CAPS,
  bounding: JOB_CAPS,
  ambient: JOB_CAPS,
  command: ['sh', '-c', 'echo "$SECRET"'],
};

describe('capabilityNames', () => {
  it("reads a /proc status mask (Apptainer's job set, 0x4fb) by bit", () => {
    expect(capabilityNames('00000000000004fb')).toEqual([
      'chown',
      'dac_override',
      'fowner',
      'fsetid',
      'kill',
      'setgid',
      'setuid',
      'net_bind_service',
    ]);
    expect(capabilityNames('0000000000000000')).toEqual([]);
    expect(capabilityNames('000001ffffffffff')).toHaveLength(41);
  });

  it('refuses a bit it has no name for, rather than leaving it out', () => {
    expect(() => capabilityNames('0000020000000000')).toThrow(/bit 41 has no name/);
  });
});

describe('execChain', () => {
  it('joins the cgroup first, then lowers privileges on the host, then enters with the static busybox only', () => {
    const { file, args } = execChain(facts);
    expect(file).toBe('/usr/bin/sh');
    expect(args.slice(3, 7)).toEqual(['2', ...facts.cgroupProcs, '/usr/bin']);
    const rest = args.slice(7);
    expect(rest.slice(0, 4)).toEqual([
      '/usr/bin/setpriv',
      '--nnp',
      `--inh-caps=-all,+${JOB_CAPS.join(',+')},+sys_admin,+sys_chroot`,
      `--ambient-caps=-all,+${JOB_CAPS.join(',+')}`,
    ]);
    expect(rest.slice(4, 6)).toEqual(['/usr/bin/setpriv', `--bounding-set=-all,+${JOB_CAPS.join(',+')}`]);
    const enter = rest.indexOf('/usr/bin/nsenter');
    expect(rest.slice(enter + 1, enter + 16)).toEqual([
      '-t',
      '4242',
      '-m',
      '-u',
      '-i',
      '-n',
      '-p',
      '-r',
      '-w',
      '-S',
      '0',
      '-G',
      '0',
      '--',
      '/proc/self/fd/9/busybox',
    ]);
    // What the entry added to the job's inheritable set goes before anything of the job's runs.
    expect(rest.slice(enter + 16)).toEqual([
      'sh',
      '-c',
      STAGE_A,
      'stevedore-exec',
      '-sys_admin,-sys_chroot',
      STAGE_B,
      '',
      'sh',
      '-c',
      'echo "$SECRET"',
    ]);
  });

  it('switches to the requested user with nsenter, dropping what the job does not hold', () => {
    const { args } = execChain({ ...facts, uid: 65534, gid: 65533, inheritable: [], workdir: '/data' });
    expect(args).toContain('--inh-caps=-all,+sys_admin,+sys_chroot,+setuid,+setgid');
    expect(args.join(' ')).toContain('-S 65534 -G 65533 -- /proc/self/fd/9/busybox');
    expect(args).toContain('-sys_admin,-sys_chroot,-setuid,-setgid');
    expect(args.slice(-4)).toEqual(['/data', 'sh', '-c', 'echo "$SECRET"']);
  });

  it('with a terminal, runs the same steps under script, sized before anything else, every word quoted', () => {
    const { args } = execChain({ ...facts, tty: { cols: 100, rows: 30 } });
    const at = args.indexOf('/usr/bin/script');
    expect(args.slice(at, at + 6)).toEqual(['/usr/bin/script', '-q', '-e', '-E', 'always', '-c']);
    const line = args[at + 6] as string;
    expect(line.startsWith("'/usr/bin/stty' rows 30 cols 100 && exec '/usr/bin/setpriv' '--nnp'")).toBe(true);
    expect(line).toContain(shellQuote('echo "$SECRET"'));
    expect(args[at + 7]).toBe('/dev/null');
  });
});

describe('shellQuote', () => {
  it('gives sh back exactly the word, whatever it holds', () => {
    const words = ["it's", '$HOME `id` $(id) "x" \\ ; | & > <', '\n\t', ''];
    const out = execFileSync('/bin/sh', ['-c', `printf '%s\\0' ${words.map(shellQuote).join(' ')}`]);
    expect(out.toString('utf8').split('\0').slice(0, -1)).toEqual(words);
  });
});

describe('envLines', () => {
  it('writes every byte of a value as an octal escape, so nothing in it is syntax; PATH defaults to the default', () => {
    expect(envLines({ A: "$(x)'\n" })).toBe(
      `export PATH=$'${[...Buffer.from(DEFAULT_EXEC_PATH)].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('')}'\nexport A=$'\\044\\050\\170\\051\\047\\012'\n`,
    );
    expect(envLines({ PATH: '/x' })).toBe("export PATH=$'\\057\\170'\n");
  });
});

describe('isStaticElf', () => {
  it('tells a program with a dynamic loader (node) and a file that is no program from a static one', async () => {
    expect(await isStaticElf(process.execPath)).toBe(false);
    expect(await isStaticElf(fileURLToPath(import.meta.url))).toBe(false);
    expect(await isStaticElf('/nonexistent/busybox')).toBe(false);
  });
});
