import { access, constants, open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { RUNTIME_PATH } from './args.js';

/**
 * The host programs an exec into an Apptainer container runs (exec-chain.ts), each an absolute
 * path found on RUNTIME_PATH (system directories only, never the worker's PATH).
 */
export interface ExecTools {
  sh: string;
  /** util-linux setpriv: no-new-privileges, inheritable, ambient and bounding sets (host side). */
  setpriv: string;
  /** util-linux nsenter: joins the job's namespaces and root, sets uid and gid. */
  nsenter: string;
  /** util-linux script: a terminal for `-t`. */
  script: string;
  /** Sizes that terminal (`stty -F`). */
  stty: string;
  /**
   * The directory holding a statically linked `busybox`: the only program that runs inside the
   * container before the job's privileges are in place, reached through a descriptor of this
   * directory opened on the host (no loader or library of the job's filesystem is involved).
   */
  busyboxDir: string;
}

/** PT_INTERP: a program header naming the dynamic loader (elf.h). */
const PT_INTERP = 3;

/** Whether `path` is an ELF executable without a dynamic loader (statically linked). */
export async function isStaticElf(path: string): Promise<boolean> {
  const file = await open(path, 'r').catch(() => null);
  if (!file) return false;
  try {
    const header = Buffer.alloc(64);
    await file.read(header, 0, 64, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46) return false; // "\x7fELF"
    const is64 = header[4] === 2;
    const le = header[5] === 1;
    const u16 = (at: number) => (le ? header.readUInt16LE(at) : header.readUInt16BE(at));
    const u32 = (at: number) => (le ? header.readUInt32LE(at) : header.readUInt32BE(at));
    const phoff = is64 ? Number(le ? header.readBigUInt64LE(0x20) : header.readBigUInt64BE(0x20)) : u32(0x1c);
    const phentsize = u16(is64 ? 0x36 : 0x2a);
    const phnum = u16(is64 ? 0x38 : 0x2c);
    if (phnum === 0 || phentsize < 4) return false;
    const table = Buffer.alloc(phentsize * phnum);
    await file.read(table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) {
      const type = le ? table.readUInt32LE(i * phentsize) : table.readUInt32BE(i * phentsize);
      if (type === PT_INTERP) return false;
    }
    return true;
  } finally {
    await file.close();
  }
}

const executable = (path: string): Promise<boolean> =>
  access(path, constants.X_OK).then(
    () => true,
    () => false,
  );

/** Finds the exec tools, or says which are missing and how to get them. */
export async function findExecTools(searchPath = RUNTIME_PATH): Promise<ExecTools | { unavailable: string }> {
  const dirs = searchPath.split(':').filter((d) => d.startsWith('/'));
  const find = async (name: string, ok: (path: string) => Promise<boolean> = executable) => {
    for (const dir of dirs) if (await ok(join(dir, name))) return join(dir, name);
    return null;
  };
  const staticBusybox = async (path: string) => (await executable(path)) && (await isStaticElf(path));
  const [sh, setpriv, nsenter, script, stty, busybox] = await Promise.all([
    find('sh'),
    find('setpriv'),
    find('nsenter'),
    find('script'),
    find('stty'),
    find('busybox', staticBusybox),
  ]);
  const missing = [
    sh ? null : 'sh',
    setpriv ? null : 'setpriv (util-linux)',
    nsenter ? null : 'nsenter (util-linux)',
    script ? null : 'script (util-linux, bsdutils on Debian)',
    stty ? null : 'stty (coreutils)',
    busybox ? null : 'a statically linked busybox (Debian: busybox-static)',
  ].filter((m): m is string => m !== null);
  if (!sh || !setpriv || !nsenter || !script || !stty || !busybox) {
    return { unavailable: `exec needs these programs in ${searchPath}: ${missing.join(', ')}` };
  }
  if (basename(busybox) !== 'busybox') return { unavailable: `unexpected busybox path ${busybox}` };
  return { sh, setpriv, nsenter, script, stty, busyboxDir: dirname(busybox) };
}
