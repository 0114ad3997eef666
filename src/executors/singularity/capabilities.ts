/**
 * Linux capability names by bit number (linux/capability.h), as util-linux's and busybox's
 * `setpriv` spell them: lower case, without `cap_`.
 */
export const CAPABILITY_NAMES: readonly string[] = [
  'chown',
  'dac_override',
  'dac_read_search',
  'fowner',
  'fsetid',
  'kill',
  'setgid',
  'setuid',
  'setpcap',
  'linux_immutable',
  'net_bind_service',
  'net_broadcast',
  'net_admin',
  'net_raw',
  'ipc_lock',
  'ipc_owner',
  'sys_module',
  'sys_rawio',
  'sys_chroot',
  'sys_ptrace',
  'sys_pacct',
  'sys_admin',
  'sys_boot',
  'sys_nice',
  'sys_resource',
  'sys_time',
  'sys_tty_config',
  'mknod',
  'lease',
  'audit_write',
  'audit_control',
  'setfcap',
  'mac_override',
  'mac_admin',
  'syslog',
  'wake_alarm',
  'block_suspend',
  'audit_read',
  'perfmon',
  'bpf',
  'checkpoint_restore',
];

/** The names of the capabilities in a /proc/<pid>/status mask (`CapBnd:\t00000000000004fb`); throws on a bit without a name. */
export function capabilityNames(hexMask: string): string[] {
  const mask = BigInt(`0x${hexMask.trim() || '0'}`);
  const names: string[] = [];
  for (let bit = 0n; mask >> bit !== 0n; bit++) {
    if (((mask >> bit) & 1n) === 0n) continue;
    const name = CAPABILITY_NAMES[Number(bit)];
    if (name === undefined) throw new Error(`capability bit ${bit} has no name this worker knows`);
    names.push(name);
  }
  return names;
}
