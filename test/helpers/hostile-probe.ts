import { readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';

/**
 * The job side of the hostile suite: one shell script (busybox) that tries every way out of its
 * container we know of and prints what each attempt did, and the host side that reads that
 * output. Every verdict is about reach (what the job could read, write or hold), not about a
 * message.
 */

/**
 * Docker's default capability set (moby oci/caps/defaults.go), by bit number (linux/capability.h).
 * No runtime may give a job more than this; Stevedore's Docker jobs get fewer still.
 */
export const DOCKER_DEFAULT_CAPS: Record<string, number> = {
  CHOWN: 0,
  DAC_OVERRIDE: 1,
  FOWNER: 3,
  FSETID: 4,
  KILL: 5,
  SETGID: 6,
  SETUID: 7,
  SETPCAP: 8,
  NET_BIND_SERVICE: 10,
  NET_RAW: 13,
  SYS_CHROOT: 18,
  MKNOD: 27,
  AUDIT_WRITE: 29,
  SETFCAP: 31,
};

/** Every capability name by bit number, for saying which ones a job held. */
const CAP_NAMES = [
  'CHOWN',
  'DAC_OVERRIDE',
  'DAC_READ_SEARCH',
  'FOWNER',
  'FSETID',
  'KILL',
  'SETGID',
  'SETUID',
  'SETPCAP',
  'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE',
  'NET_BROADCAST',
  'NET_ADMIN',
  'NET_RAW',
  'IPC_LOCK',
  'IPC_OWNER',
  'SYS_MODULE',
  'SYS_RAWIO',
  'SYS_CHROOT',
  'SYS_PTRACE',
  'SYS_PACCT',
  'SYS_ADMIN',
  'SYS_BOOT',
  'SYS_NICE',
  'SYS_RESOURCE',
  'SYS_TIME',
  'SYS_TTY_CONFIG',
  'MKNOD',
  'LEASE',
  'AUDIT_WRITE',
  'AUDIT_CONTROL',
  'SETFCAP',
  'MAC_OVERRIDE',
  'MAC_ADMIN',
  'SYSLOG',
  'WAKE_ALARM',
  'BLOCK_SUSPEND',
  'AUDIT_READ',
  'PERFMON',
  'BPF',
  'CHECKPOINT_RESTORE',
];

/** The capabilities in a /proc/<pid>/status hex mask that Docker's default set lacks. */
export function capsBeyondDockerDefault(hex: string): string[] {
  const mask = BigInt(`0x${hex || '0'}`);
  const allowed = new Set(Object.values(DOCKER_DEFAULT_CAPS));
  const beyond: string[] = [];
  for (let bit = 0; bit < 64; bit++) {
    if ((mask >> BigInt(bit)) & 1n && !allowed.has(bit)) beyond.push(CAP_NAMES[bit] ?? `cap${bit}`);
  }
  return beyond;
}

/** Where a host path lives: its filesystem (major:minor) and its path from that filesystem's root. */
export interface HostLocation {
  dev: string;
  /** The path as a mount of that filesystem's root would show it (mountinfo's "root" field plus the rest). */
  fsPath: string;
}

/** Reads the host's (this process's) mount table to say where `path` (already resolved) lives. */
export async function hostLocation(path: string): Promise<HostLocation> {
  const lines = (await readFile('/proc/self/mountinfo', 'utf8')).trim().split('\n');
  let best: { mountPoint: string; root: string; dev: string } | undefined;
  for (const line of lines) {
    const [, , dev, root, mountPoint] = line.split(' ');
    if (!dev || !root || !mountPoint) continue;
    const inside = mountPoint === '/' || path === mountPoint || path.startsWith(`${mountPoint}/`);
    if (inside && (!best || mountPoint.length >= best.mountPoint.length)) best = { mountPoint, root, dev };
  }
  if (!best) throw new Error(`no mount holds ${path}`);
  const rest = relative(best.mountPoint, path);
  return { dev: best.dev, fsPath: rest ? join(best.root, rest) : best.root };
}

/** `/a/b/c` → `/a/b/c`, `/b/c`, `/c`: the path as seen through a bind of each of its ancestors. */
export function suffixes(path: string): string[] {
  const parts = path.split('/').filter(Boolean);
  return parts.map((_, i) => `/${parts.slice(i).join('/')}`);
}

/** What the probe needs to know about the host, passed in its env (no secret value, only paths). */
export interface ProbeTargets {
  /** The secret file (host path) the job must never read. */
  secret: HostLocation & { path: string };
  /** A directory outside every allowed prefix (host path) the job must never write into. */
  outside: HostLocation & { path: string };
  /** The world's root as its filesystem sees it: mounts from inside it are the job's own binds. */
  worldFsPath: string;
}

export function probeEnv(t: ProbeTargets): Record<string, string> {
  const [major, minor] = t.secret.dev.split(':');
  return {
    S: t.secret.path,
    S_FS: t.secret.fsPath,
    S_SUFFIXES: suffixes(t.secret.path).join(' '),
    OUT: t.outside.path,
    OUT_FS: t.outside.fsPath,
    OUT_SUFFIXES: suffixes(t.outside.path).join(' '),
    WORLD_FS: t.worldFsPath,
    DISK: `${major} ${minor}`,
  };
}

/**
 * The job: prints its capabilities and namespaces and mount table, tries each privileged act
 * (`act.NAME=allowed|denied <what it said>`), then every way to the secret (each success prints
 * the secret and a `trick=` line) and into the outside directory (`wrote=`). It always exits 0.
 * Nothing it tries harms the host if it works: modules are garbage the kernel refuses to parse,
 * the network act adds a documentation address (RFC 5737) to its loopback and takes it away again,
 * and writes go only into the test's own world.
 */
export const PROBE_SCRIPT = String.raw`exec 2>&1
say() { printf '%s\n' "$*"; }
act() { n=$1; shift; if o=$("$@" 2>&1); then r=allowed; else r=denied; fi; say "act.$n=$r $(printf '%s' "$o" | tr '\n' ' ' | head -c 200)"; }
grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status | sed 's/:[[:space:]]*/=/; s/^/status./'
for n in pid mnt net ipc uts cgroup; do say "ns.$n=$(readlink /proc/self/ns/$n)"; done
sed 's/^/mount /' /proc/self/mountinfo
mkdir -p /tmp/hs/m /tmp/hs/dev /tmp/hs/disk
act mount-tmpfs mount -t tmpfs none /tmp/hs/m
act mount-devtmpfs mount -t devtmpfs none /tmp/hs/dev
act mknod-disk mknod /tmp/hs/disk-node b $DISK
act net-addr sh -c 'ip addr add 192.0.2.1/32 dev lo && ip addr del 192.0.2.1/32 dev lo'
printf 'not a kernel module' >/tmp/hs/x.ko
act module insmod /tmp/hs/x.ko
act unshare-mount unshare -m true
act ro-write sh -c 'echo pwned >/data/pwned-ro'
[ -d /rw ] && act rw-write sh -c 'echo ok >/rw/probe-rw && rm /rw/probe-rw'
for b in /tmp/hs/disk-node /tmp/hs/dev/* /dev/*; do
  [ -b "$b" ] || continue
  act "read-disk:$b" sh -c 'head -c 4096 "$1" >/dev/null' - "$b"
  if mount -o ro "$b" /tmp/hs/disk 2>/dev/null; then
    say "act.mount-disk:$b=allowed"
    cat "/tmp/hs/disk$S_FS" 2>/dev/null && say "trick=disk:$b"
    umount /tmp/hs/disk
    if mount "$b" /tmp/hs/disk 2>/dev/null; then
      { echo pwned >"/tmp/hs/disk$OUT_FS/pwned-disk"; } 2>/dev/null && say "wrote=disk:$b"
      umount /tmp/hs/disk
    fi
  else
    say "act.mount-disk:$b=denied"
  fi
done
cat "$S" 2>/dev/null && say "trick=host-path"
for p in /proc/[0-9]*; do cat "$p/root$S" 2>/dev/null && say "trick=$p/root"; done
mounts=$(cut -d' ' -f5 /proc/self/mountinfo)
for m in $mounts; do
  for s in $S_SUFFIXES; do cat "$m$s" 2>/dev/null && say "trick=mount:$m$s"; done
done
{ echo pwned >"$OUT/pwned-host"; } 2>/dev/null && say "wrote=host-path"
for p in /proc/[0-9]*; do { echo pwned >"$p/root$OUT/pwned-proc"; } 2>/dev/null && say "wrote=$p/root"; done
for m in $mounts; do
  case "$m" in /proc*|/sys*|/dev*) continue ;; esac
  for d in $OUT_SUFFIXES; do { echo pwned >"$m$d/pwned-mount"; } 2>/dev/null && say "wrote=mount:$m$d"; done
done
while read -r _ _ _ root mp _; do
  case "$root" in "$WORLD_FS"/*) { echo pwned >"$mp/pwned-bind"; } 2>/dev/null && say "bind-written=$mp" ;; esac
done </proc/self/mountinfo
say done
`;

/** One line of the job's /proc/self/mountinfo. */
export interface JobMount {
  dev: string;
  /** The directory of the filesystem that is mounted (for a bind: the host directory). */
  root: string;
  mountPoint: string;
  line: string;
}

/** What the probe printed, by kind. */
export interface ProbeOutput {
  status: Record<string, string>;
  ns: Record<string, string>;
  mounts: JobMount[];
  acts: Record<string, { allowed: boolean; said: string }>;
  tricks: string[];
  wrote: string[];
  bindWritten: string[];
  finished: boolean;
}

export function parseProbe(text: string): ProbeOutput {
  const out: ProbeOutput = {
    status: {},
    ns: {},
    mounts: [],
    acts: {},
    tricks: [],
    wrote: [],
    bindWritten: [],
    finished: false,
  };
  for (const line of text.split('\n')) {
    const status = /^status\.(\w+)=(.*)$/.exec(line);
    const ns = /^ns\.(\w+)=(.*)$/.exec(line);
    const act = /^act\.(.+?)=(allowed|denied) ?(.*)$/.exec(line);
    if (status) out.status[status[1] as string] = (status[2] as string).trim();
    else if (ns) out.ns[ns[1] as string] = ns[2] as string;
    else if (act) out.acts[act[1] as string] = { allowed: act[2] === 'allowed', said: act[3] ?? '' };
    else if (line.startsWith('mount ')) {
      const [, , , dev, root, mountPoint] = line.split(' ');
      out.mounts.push({
        dev: dev ?? '',
        root: root ?? '',
        mountPoint: mountPoint ?? '',
        line: line.slice(6),
      });
    } else if (line.startsWith('trick=')) out.tricks.push(line.slice(6));
    else if (line.startsWith('wrote=')) out.wrote.push(line.slice(6));
    else if (line.startsWith('bind-written=')) out.bindWritten.push(line.slice(13));
    else if (line === 'done') out.finished = true;
  }
  return out;
}

/** What a runtime keeps of the promises, where it differs on purpose (the suite's expectation table). */
export interface ReachExpectations {
  /** A seccomp filter on the job (Seccomp: 2), or why the runtime gives none. */
  seccomp: { filtered: true } | { filtered: false; why: string };
  /** Host directories (fs paths) the runtime itself binds into every container, and why. */
  ownBinds?: { pattern: RegExp; why: string };
}

export interface ReachContext {
  /** The secret's content, which must appear nowhere in the job's output. */
  secret: string;
  /** The host's (the worker's) namespaces, which the job must not share. */
  hostNs: Record<string, string>;
  /** The filesystem the world lives on. */
  worldDev: string;
  /** The fs paths of the host directories this job may see (its own binds). */
  allowedBinds: string[];
  /** The fs paths of the host directories this job binds read-only: nothing may be written there. */
  readOnlyBinds: string[];
  expect: ReachExpectations;
}

/** Every promise the job's output shows broken, each said in one line; empty when all held. */
export function reachProblems(text: string, ctx: ReachContext): string[] {
  const p = parseProbe(text);
  const problems: string[] = [];
  if (text.includes(ctx.secret)) {
    problems.push(`read the secret (${p.tricks.join(', ') || 'by a way it did not name'})`);
  }
  for (const w of p.wrote) problems.push(`wrote into the outside dir through ${w}`);
  // A job that never ran its probe reached nothing more than the above shows; its other lines are absent.
  if (!p.finished) return [...problems, 'the probe did not run to its end'];
  for (const mp of p.bindWritten) {
    const root = p.mounts.find((m) => m.mountPoint === mp)?.root ?? '';
    if (ctx.readOnlyBinds.some((ro) => root === ro || root.startsWith(`${ro}/`))) {
      problems.push(`wrote into the read-only host dir ${root} through ${mp}`);
    }
  }
  if (p.status.NoNewPrivs !== '1') problems.push(`NoNewPrivs is ${p.status.NoNewPrivs ?? 'absent'}, not 1`);
  for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) {
    const hex = p.status[set];
    if (hex === undefined) problems.push(`${set} not printed`);
    else {
      const beyond = capsBeyondDockerDefault(hex);
      if (beyond.length > 0) problems.push(`${set} ${hex} holds ${beyond.join(', ')}`);
    }
  }
  if (ctx.expect.seccomp.filtered && p.status.Seccomp !== '2') {
    problems.push(`Seccomp is ${p.status.Seccomp ?? 'absent'}, not 2 (a filter)`);
  }
  for (const name of ['mount-tmpfs', 'mount-devtmpfs', 'unshare-mount', 'ro-write']) {
    const a = p.acts[name];
    if (!a) problems.push(`act ${name} not tried`);
    else if (a.allowed) problems.push(`act ${name} was allowed`);
  }
  const net = p.acts['net-addr'];
  if (!net || net.allowed || !/not permitted/i.test(net.said)) {
    problems.push(`changing the network was not refused for lack of privilege: ${net?.said || 'allowed'}`);
  }
  // EPERM (no CAP_SYS_MODULE, or a seccomp filter); ENOSYS, busybox's "kernel does not support
  // requested operation", is a kernel built without modules, where the capability sets above decide.
  const module = p.acts.module;
  if (!module || module.allowed || !/not permitted|does not support requested operation/i.test(module.said)) {
    problems.push(`loading a module was not refused: ${module?.said || 'allowed'}`);
  }
  for (const [name, a] of Object.entries(p.acts)) {
    if (/^(read-disk|mount-disk):/.test(name) && a.allowed) problems.push(`act ${name} was allowed`);
  }
  for (const ns of ['pid', 'mnt', 'net', 'ipc']) {
    if (!p.ns[ns] || p.ns[ns] === ctx.hostNs[ns]) problems.push(`shares the host's ${ns} namespace`);
  }
  for (const m of p.mounts) {
    if (m.dev !== ctx.worldDev) continue;
    if (m.root === '/') problems.push(`sees the host's root filesystem at ${m.mountPoint}`);
    else if (!ctx.allowedBinds.includes(m.root) && !ctx.expect.ownBinds?.pattern.test(m.root)) {
      problems.push(`sees host directory ${m.root} at ${m.mountPoint}`);
    }
  }
  return problems;
}
