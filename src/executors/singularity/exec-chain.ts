import type { ExecTools } from './exec-tools.js';

/**
 * How an exec enters a running Apptainer container with the job's own confinement, and nothing
 * from the job's filesystem runs before that confinement is in place (checked on Apptainer 1.4.5,
 * util-linux 2.38, busybox 1.35). Each step execs the next:
 *
 * 1. host `sh`: joins the job's cgroup (its limits and counters hold for the exec), opens the
 *    directory of a static busybox as fd 9.
 * 2. host `setpriv` (util-linux): no-new-privileges; inheritable = the job's + what steps 4-5
 *    still need (SYS_ADMIN for setns, SYS_CHROOT for the root, SETUID/SETGID for the user);
 *    ambient = the job's.
 * 3. host `setpriv` again: bounding set = the job's. Two steps, since setpriv lowers the
 *    bounding set before it sets the inheritable one, and the kernel refuses an inheritable
 *    capability outside the bounding set; once inheritable, it survives the lowering.
 * 4. host `nsenter`: the job's mount, UTS, IPC, network and PID namespaces, root and working
 *    directory; the job's uid and gid (or the requested user's), no supplementary groups. Its
 *    program is `/proc/self/fd/9/busybox`: the host's static busybox through the descriptor, so
 *    no loader, library or program of the job's filesystem runs, whatever the job put where.
 * 5. busybox ash (STAGE_A): closes fd 9 first, while it still holds capabilities the job does
 *    not (so a job process cannot reach it through /proc); busybox `setpriv` drops the
 *    inheritable capabilities step 2 added; busybox re-runs itself through /proc/self/exe.
 * 6. busybox ash (STAGE_B), with exactly the job's capabilities: changes to the requested
 *    working directory, replaces its environment by the one read from fd 8 (the job's, then the
 *    request's), finds the command on that PATH and execs it. Only now does anything of the
 *    job's filesystem run.
 * The variables never reach a host program: they come on a pipe, and a dynamic host program
 * would otherwise act on LD_PRELOAD and the like as root. Not kept: the job's seccomp filter
 * (docs/apptainer.md says why).
 */

/** What an exec needs to know about the job and the request. */
export interface ExecChainFacts {
  tools: ExecTools;
  /** A process of the job's image, as the host numbers it. */
  pid: number;
  /** The job cgroup's `cgroup.procs` files; empty when the job has no cgroup of its own. */
  cgroupProcs: readonly string[];
  uid: number;
  gid: number;
  inheritable: readonly string[];
  bounding: readonly string[];
  ambient: readonly string[];
  /** In the container; absent: the job's process's own. */
  workdir?: string;
  /** A terminal of this size (through util-linux `script`). */
  tty?: { cols: number; rows: number };
  command: readonly string[];
}

/** Capabilities steps 4 and 5 need beyond the job's. */
const ENTRY_CAPABILITIES = ['sys_admin', 'sys_chroot', 'setuid', 'setgid'];

/** Step 1: join the cgroup (`n` files), open fd 9, exec the rest. */
const HOST_STEP =
  'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec 9<"$1" || exit 125; shift; exec "$@"';

/** Step 5 ($1 the capabilities to drop, $2 STAGE_B). Applets run from /proc/self/exe (busybox's standalone shell). */
export const STAGE_A =
  'exec 9<&-; d=$1; b=$2; shift 2; if [ -n "$d" ]; then exec setpriv --inh-caps "$d" sh -c "$b" stevedore-exec "$@"; fi; exec sh -c "$b" stevedore-exec "$@"';

/**
 * Step 6 ($1 the working directory or "", then the command). fd 8 holds one `export NAME=$'…'`
 * line per variable, each byte of the value an octal escape (envLines): nothing in it is syntax
 * but the quoting. The helper variables are never exported, so they do not reach the command;
 * a request may not set names starting with __stevedore_. PATH is always among the variables.
 */
export const STAGE_B = [
  'set -f',
  '__stevedore_w=$1; shift',
  'if [ -n "$__stevedore_w" ]; then cd -- "$__stevedore_w" || { echo "stevedore exec: cannot change to the working directory $__stevedore_w" >&2; exit 126; }; fi',
  'unset SHLVL OLDPWD PWD PATH',
  'while IFS= read -r __stevedore_l; do eval "$__stevedore_l"; done <&8',
  'exec 8<&-',
  '__stevedore_c=$1; shift',
  'case $__stevedore_c in */*) ;; *) __stevedore_p=$(IFS=:; for d in $PATH; do [ -n "$d" ] || d=.; if [ -f "$d/$__stevedore_c" ] && [ -x "$d/$__stevedore_c" ]; then printf %s "$d/$__stevedore_c"; exit 0; fi; done; exit 1) || { echo "stevedore exec: $__stevedore_c: executable file not found in \\$PATH" >&2; exit 127; }; __stevedore_c=$__stevedore_p;; esac',
  'exec "$__stevedore_c" "$@"',
].join('\n');

/** The PATH an exec gets when neither the job nor the request has one (Docker's default). */
export const DEFAULT_EXEC_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const plus = (names: readonly string[]) => names.map((n) => `,+${n}`).join('');

/** A word for `sh -c`: single-quoted, so nothing in it is syntax. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** The variables as STAGE_B reads them from fd 8 (names already checked: letters, digits and _). */
export function envLines(env: Readonly<Record<string, string>>): string {
  let text = '';
  for (const [name, value] of Object.entries({ PATH: DEFAULT_EXEC_PATH, ...env })) {
    let escaped = '';
    for (const byte of Buffer.from(value, 'utf8')) escaped += `\\${byte.toString(8).padStart(3, '0')}`;
    text += `export ${name}=$'${escaped}'\n`;
  }
  return text;
}

/** The host program and its arguments for one exec (steps 1 to 6). */
export function execChain(facts: ExecChainFacts): { file: string; args: string[] } {
  const { tools } = facts;
  const inheritable = [...new Set([...facts.inheritable, ...ENTRY_CAPABILITIES])];
  const drop = ENTRY_CAPABILITIES.filter((c) => !facts.inheritable.includes(c))
    .map((c) => `-${c}`)
    .join(',');
  const entry = [
    tools.setpriv,
    '--nnp',
    `--inh-caps=-all${plus(inheritable)}`,
    `--ambient-caps=-all${plus(facts.ambient)}`,
    tools.setpriv,
    `--bounding-set=-all${plus(facts.bounding)}`,
    tools.nsenter,
    '-t',
    String(facts.pid),
    '-m',
    '-u',
    '-i',
    '-n',
    '-p',
    '-r',
    '-w',
    '-S',
    String(facts.uid),
    '-G',
    String(facts.gid),
    '--',
    '/proc/self/fd/9/busybox',
    'sh',
    '-c',
    STAGE_A,
    'stevedore-exec',
    drop,
    STAGE_B,
    facts.workdir ?? '',
    ...facts.command,
  ];
  const rest = facts.tty
    ? [
        tools.script,
        '-q',
        '-e',
        '-E',
        'always',
        '-c',
        `${shellQuote(tools.stty)} rows ${facts.tty.rows} cols ${facts.tty.cols} && exec ${entry.map(shellQuote).join(' ')}`,
        '/dev/null',
      ]
    : entry;
  return {
    file: tools.sh,
    args: [
      '-c',
      HOST_STEP,
      'sh',
      String(facts.cgroupProcs.length),
      ...facts.cgroupProcs,
      tools.busyboxDir,
      ...rest,
    ],
  };
}
