import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Default cap of the cache: a few dozen typical job images. */
export const DEFAULT_SIF_CACHE_BYTES = 20 * 1024 ** 3;
const KEY = /^[0-9a-f]{64}$/;

/** Converts an image into a SIF at `target` (a temporary path the cache renames into place). */
export type Convert = (target: string, tmpDir: string) => Promise<void>;

/**
 * Images converted to SIF, one file per image digest (`<dir>/<sha256>.sif`), with a size cap:
 * past it the least recently used files go (use = a job ran it; the file's mtime says when), never
 * one a container runs now. Also the names the images were loaded under (`refs.json`: reference →
 * digest), so "present" means what it means for an engine's tags. One conversion per digest at a
 * time: jobs that need an image being converted wait on that conversion.
 */
export class SifCache {
  private readonly converting = new Map<string, Promise<string>>();
  private readonly inUse = new Map<string, number>();

  constructor(
    readonly dir: string,
    readonly maxBytes = DEFAULT_SIF_CACHE_BYTES,
  ) {}

  pathOf(key: string): string {
    if (!KEY.test(key)) throw new Error(`not a sha256 digest: ${JSON.stringify(key)}`);
    return join(this.dir, `${key}.sif`);
  }

  /** The digest an image reference was loaded as, if its SIF is still here. */
  async lookup(reference: string): Promise<string | null> {
    const key = (await this.readRefs())[reference];
    if (!key) return null;
    return (await this.has(key)) ? key : null;
  }

  async has(key: string): Promise<boolean> {
    return stat(this.pathOf(key)).then(
      (s) => s.isFile(),
      () => false,
    );
  }

  /** Records that `reference` names the image `key` (as a load tags an image). */
  async remember(reference: string, key: string): Promise<void> {
    const refs = await this.readRefs();
    if (refs[reference] === key) return;
    refs[reference] = key;
    await this.writeRefs(refs);
  }

  /** The SIF of `key`, converted by `convert` when it is not here; then the cap is enforced. */
  async ensure(key: string, convert: Convert): Promise<{ path: string; converted: boolean }> {
    const path = this.pathOf(key);
    if (await this.has(key)) return { path, converted: false };
    let pending = this.converting.get(key);
    const mine = pending === undefined;
    if (!pending) {
      pending = this.convertOnce(key, convert).finally(() => this.converting.delete(key));
      this.converting.set(key, pending);
    }
    await pending;
    return { path, converted: mine };
  }

  private async convertOnce(key: string, convert: Convert): Promise<string> {
    await mkdir(this.dir, { recursive: true });
    const tmpDir = join(this.dir, `.tmp-${key.slice(0, 12)}-${randomUUID()}`);
    await mkdir(tmpDir);
    try {
      const target = join(tmpDir, 'image.sif');
      await convert(target, tmpDir);
      await rename(target, this.pathOf(key));
    } finally {
      await rm(tmpDir, { recursive: true, force: true });
    }
    await this.evict(key);
    return this.pathOf(key);
  }

  /** Marks the SIF as used now and keeps it from eviction until the returned release is called. */
  async acquire(key: string): Promise<() => void> {
    this.inUse.set(key, (this.inUse.get(key) ?? 0) + 1);
    const now = new Date();
    await utimes(this.pathOf(key), now, now).catch(() => undefined);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.inUse.get(key) ?? 1) - 1;
      if (left > 0) this.inUse.set(key, left);
      else this.inUse.delete(key);
    };
  }

  /** Removes least recently used SIFs until the cache is within its cap; keeps `keep` and those in use. */
  async evict(keep?: string): Promise<string[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const files = (
      await Promise.all(
        names
          .filter((n) => n.endsWith('.sif') && KEY.test(n.slice(0, -4)))
          .map(async (n) => {
            const s = await stat(join(this.dir, n)).catch(() => null);
            return s ? { key: n.slice(0, -4), size: s.size, usedAt: s.mtimeMs } : null;
          }),
      )
    ).filter((f): f is { key: string; size: number; usedAt: number } => f !== null);
    let total = files.reduce((sum, f) => sum + f.size, 0);
    const removed: string[] = [];
    for (const f of files.sort((a, b) => a.usedAt - b.usedAt)) {
      if (total <= this.maxBytes) break;
      if (f.key === keep || this.inUse.has(f.key)) continue;
      await rm(this.pathOf(f.key), { force: true });
      total -= f.size;
      removed.push(f.key);
    }
    if (removed.length > 0) await this.forgetKeys(new Set(removed));
    return removed;
  }

  private async forgetKeys(keys: Set<string>): Promise<void> {
    const refs = await this.readRefs();
    for (const [ref, key] of Object.entries(refs)) if (keys.has(key)) delete refs[ref];
    await this.writeRefs(refs);
  }

  /** Read each time: other workers on the host share the directory. */
  private async readRefs(): Promise<Record<string, string>> {
    const text = await readFile(join(this.dir, 'refs.json'), 'utf8').catch(() => '{}');
    try {
      return JSON.parse(text) as Record<string, string>;
    } catch {
      return {}; // a damaged index only costs conversions
    }
  }

  private async writeRefs(refs: Record<string, string>): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const tmp = join(this.dir, `.refs-${randomUUID()}.json`);
    await writeFile(tmp, `${JSON.stringify(refs, null, 1)}\n`);
    await rename(tmp, join(this.dir, 'refs.json'));
  }
}
