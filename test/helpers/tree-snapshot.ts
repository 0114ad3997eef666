import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Every file, link and directory under `root` with what identifies its content (size and mtime,
 * a link's target), skipping the subtrees in `skip`: a sentinel scan, compared before and after a
 * job, shows what the job wrote on the host.
 */
export async function snapshotTree(root: string, skip: string[] = []): Promise<Map<string, string>> {
  const seen = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const path = join(dir, name);
      if (skip.some((s) => path === s || path.startsWith(`${s}/`))) continue;
      const st = await lstat(path).catch(() => null);
      if (!st) continue;
      if (st.isDirectory()) {
        seen.set(path, 'dir');
        await walk(path);
      } else if (st.isSymbolicLink()) seen.set(path, `link -> ${await readlink(path)}`);
      else seen.set(path, `file ${st.size} bytes, mtime ${st.mtimeMs}, mode ${st.mode.toString(8)}`);
    }
  };
  await walk(root);
  return seen;
}

/** What is new or changed in `after`, and what went, each as one line. */
export function treeChanges(before: Map<string, string>, after: Map<string, string>): string[] {
  const changes: string[] = [];
  for (const [path, what] of after) {
    const was = before.get(path);
    if (was === undefined) changes.push(`new: ${path} (${what})`);
    else if (was !== what) changes.push(`changed: ${path} (${was} → ${what})`);
  }
  for (const path of before.keys()) if (!after.has(path)) changes.push(`gone: ${path}`);
  return changes;
}
