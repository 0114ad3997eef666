import { mountArg } from './mounts.js';

/**
 * How an Apptainer job is confined when the worker runs as root (checked on Apptainer 1.4.5).
 *
 * Apptainer run as root keeps every capability by default (`CapEff: 000001fffeffffff`: mount,
 * modules, raw disks, the host's network). We pass `--no-privs` (no capabilities and the
 * no-new-privileges bit, whatever apptainer.conf's `root default capabilities` says) and then
 * `--add-caps` with exactly the capabilities a Docker job of ours keeps: Docker's default set
 * without DROPPED_CAPABILITIES (docker/create-options.ts). The rest of Docker's default set
 * (MKNOD, NET_RAW, SETFCAP, SETPCAP, SYS_CHROOT, AUDIT_WRITE) stays off here too; MKNOD matters
 * more than on Docker, since Apptainer gives a job no devices cgroup and its /dev is a tmpfs
 * without `nodev`. Not chosen: `--keep-privs` (every capability); `--drop-caps` alone (starts
 * from the conf's set, which the installer makes "every capability there is", and leaves
 * no-new-privileges off); `--userns` (a user namespace in which the job holds every capability
 * over its own mounts, so `mount -t tmpfs` succeeds; and SIFs can no longer be kernel-mounted).
 *
 * Capabilities are not all of Docker's confinement, so three more things stand in for the rest:
 * - /proc/sys, /proc/sysrq-trigger, /proc/irq and /proc/bus are bound read-only from the host:
 *   uid 0 writes sysctls (`kernel.core_pattern` runs a program as host root) and the sysrq
 *   trigger (reboots the host) by file mode alone, without any capability. /proc/sys's
 *   binfmt_misc (a host-wide interpreter table, also writable by mode) is covered with an empty
 *   read-only directory, since the host's mount there would come along with /proc/sys.
 * - `--no-mount sys,bind-paths`: no /sys (uid 0 may write many sysfs files, such as CPU
 *   hotplug, by mode alone) and none of apptainer.conf's `bind path` entries (the default
 *   binds the host's /etc/localtime read-write).
 * - a seccomp profile that refuses new namespaces (`unshare`, `setns`, `clone` with a namespace
 *   flag) and mounting: with them a job makes a user namespace in which it may mount. `clone3`
 *   stays allowed, since its flags are in memory a filter cannot read, and Apptainer's profiles can
 *   only answer EPERM, which glibc's threads do not fall back from (Docker answers ENOSYS).
 *   Also refused, as on Docker: keyrings, modules, kexec, reboot, swap, bpf, perf events,
 *   userfaultfd, io_uring, open_by_handle_at.
 */
export const JOB_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_NET_BIND_SERVICE',
  'CAP_SETGID',
  'CAP_SETUID',
];

/** Host paths bound read-only onto themselves, each where the host has it (see above). */
export const READ_ONLY_PROC_PATHS: readonly string[] = [
  '/proc/sys',
  '/proc/sysrq-trigger',
  '/proc/irq',
  '/proc/bus',
];

/** Directories covered with an empty read-only directory, each where the host has it. */
export const MASKED_PROC_DIRS: readonly string[] = ['/proc/sys/fs/binfmt_misc'];

/** Syscalls a job may never make (EPERM); most also need a capability the job lacks. */
export const BLOCKED_SYSCALLS: readonly string[] = [
  'unshare',
  'setns',
  'mount',
  'umount',
  'umount2',
  'pivot_root',
  'fsopen',
  'fsconfig',
  'fsmount',
  'fspick',
  'move_mount',
  'open_tree',
  'mount_setattr',
  'keyctl',
  'add_key',
  'request_key',
  'init_module',
  'finit_module',
  'delete_module',
  'kexec_load',
  'kexec_file_load',
  'reboot',
  'swapon',
  'swapoff',
  'acct',
  'bpf',
  'perf_event_open',
  'userfaultfd',
  'io_uring_setup',
  'io_uring_enter',
  'io_uring_register',
  'open_by_handle_at',
  'lookup_dcookie',
  'quotactl',
];

/** clone() flags that make a new namespace (linux/sched.h); clone's first argument on x86 and arm. */
const CLONE_NAMESPACE_FLAGS = {
  CLONE_NEWNS: 0x0002_0000,
  CLONE_NEWCGROUP: 0x0200_0000,
  CLONE_NEWUTS: 0x0400_0000,
  CLONE_NEWIPC: 0x0800_0000,
  CLONE_NEWUSER: 0x1000_0000,
  CLONE_NEWPID: 0x2000_0000,
  CLONE_NEWNET: 0x4000_0000,
};

/** The libseccomp architectures a process of `nodeArch` may run code for (32-bit binaries too). */
const SECCOMP_ARCHES: Record<string, string[]> = {
  x64: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
  arm64: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
};

/** The seccomp profile (OCI JSON, as `apptainer exec --security seccomp:FILE` reads it) for `nodeArch` (process.arch). */
export function seccompProfile(nodeArch: string): string {
  const clone = Object.values(CLONE_NAMESPACE_FLAGS).map((flag) => ({
    names: ['clone'],
    action: 'SCMP_ACT_ERRNO',
    // One rule per flag: a rule's conditions all hold at once, and rules are alternatives.
    args: [{ index: 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }],
  }));
  return `${JSON.stringify(
    {
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: SECCOMP_ARCHES[nodeArch] ?? [],
      syscalls: [{ names: [...BLOCKED_SYSCALLS], action: 'SCMP_ACT_ERRNO' }, ...clone],
    },
    null,
    2,
  )}\n`;
}

/** What the worker prepared on this host for confining jobs (SingularityRuntime.open). */
export interface HardeningFacts {
  /**
   * The worker runs as root: capabilities, seccomp and the read-only paths apply. Otherwise
   * Apptainer runs each job as the worker's own user, with no capabilities at all (`--no-privs`).
   */
  root: boolean;
  /** The seccomp profile file; null when this Apptainer cannot apply one. */
  seccompProfile: string | null;
  /** The READ_ONLY_PROC_PATHS this host has. */
  readOnlyPaths: string[];
  /** The MASKED_PROC_DIRS this host has, and the empty directory that covers them. */
  maskedDirs: string[];
  emptyDir: string;
  /** /etc/hosts for every job (HOSTS_FILE): `bind-paths` off leaves Apptainer's own empty. */
  hostsFile: string;
}

/** What a job's /etc/hosts says, as on Docker: localhost resolves without DNS. */
export const HOSTS_FILE = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n';

/** The flags that confine a job (see JOB_CAPABILITIES). */
export function hardeningArgs(facts: HardeningFacts): string[] {
  const args = [
    '--no-mount',
    'sys,bind-paths',
    '--no-privs',
    '--mount',
    mountArg(facts.hostsFile, '/etc/hosts', true),
  ];
  if (!facts.root) return args;
  args.push('--add-caps', JOB_CAPABILITIES.join(','));
  if (facts.seccompProfile !== null) args.push('--security', `seccomp:${facts.seccompProfile}`);
  for (const path of facts.readOnlyPaths) args.push('--mount', mountArg(path, path, true));
  for (const dir of facts.maskedDirs) args.push('--mount', mountArg(facts.emptyDir, dir, true));
  return args;
}
