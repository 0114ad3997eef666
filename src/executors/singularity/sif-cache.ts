import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_SIF_CACHE_BYTES } from '../../config/defaults.js';

const KEY = /^[0-9a-f]{64}$/;

/** One SIF the cache removed to stay within its cap: which, how big, and why (for events.log). */
export interface Eviction {
  key: string;
  /** The image references it was loaded under. */
  references: string[];
  bytes: number;
  /** When a job last ran it (the file's mtime). */
  lastUsedAt: string;
  reason: string;
}

/** Converts an image into a SIF at `target` (a temporary path the cache renames into place). */
export type Convert = (target: string, tmpDir: string) => Promise<void>;

/**
 * Images converted to SIF, one file per image digest (`<dir>/<sha256>.sif`), with a size cap:
 * past it the least recently used files go (use = a job ran it; the file's mtime says when), never
 * one a container runs now. Also the names the images were loaded under (`refs.json`: reference →
 * digest), so "present" means what it means for an engine's tags. One conversion per digest at a
 * time: jobs that need an image being converted wait on that conversion. Evictions run one at a
 * time and never take an image a call of ensure() is busy with, so concurrent conversions keep
 * the cap and none removes a SIF another job was just handed.
 */
export class SifCache {
  private readonly converting = new Map<string, Promise<string>>();
  private readonly inUse = new Map<string, number>();
  /** Keys an ensure() call is busy with (a hit being handed out, a conversion): never evicted meanwhile. */
  private readonly ensuring = new Map<string, number>();
  /** The eviction running now; the next waits for it. */
  private evicting: Promise<unknown> = Promise.resolve();

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

  /**
   * The SIF of `key`, converted by `convert` when it is not here; then the cap is enforced, and
   * what that removed is in `evicted` (empty for the calls that waited on another's conversion).
   * A hit is marked as used now, so an eviction running meanwhile takes older images first.
   */
  async ensure(
    key: string,
    convert: Convert,
  ): Promise<{ path: string; converted: boolean; evicted: Eviction[] }> {
    const path = this.pathOf(key);
    count(this.ensuring, key, +1);
    try {
      if (await this.has(key)) {
        const now = new Date();
        // Only the eviction order's mark: a file evicted meanwhile is caught by the look below.
        await utimes(path, now, now).catch(() => undefined);
        if (await this.has(key)) return { path, converted: false, evicted: [] };
      }
      let pending = this.converting.get(key);
      const mine = pending === undefined;
      if (!pending) {
        pending = this.convertOnce(key, convert).finally(() => this.converting.delete(key));
        this.converting.set(key, pending);
      }
      await pending;
      const evicted = mine ? await this.evict(key) : [];
      return { path, converted: mine, evicted };
    } finally {
      count(this.ensuring, key, -1);
    }
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
    return this.pathOf(key);
  }

  /** Marks the SIF as used now and keeps it from eviction until the returned release is called. */
  async acquire(key: string): Promise<() => void> {
    count(this.inUse, key, +1);
    const now = new Date();
    // Only the eviction order's mark; the count above is what keeps the file from eviction.
    await utimes(this.pathOf(key), now, now).catch(() => undefined);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      count(this.inUse, key, -1);
    };
  }

  /**
   * Removes least recently used SIFs until the cache is within its cap; keeps `keep`, those in
   * use and those an ensure() call is busy with. One eviction at a time, each on a fresh listing.
   */
  evict(keep?: string): Promise<Eviction[]> {
    const run = this.evicting.then(() => this.evictNow(keep));
    this.evicting = run.catch(() => undefined); // the caller gets the failure; the next eviction runs anyway
    return run;
  }

  private async evictNow(keep: string | undefined): Promise<Eviction[]> {
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
    const before = files.reduce((sum, f) => sum + f.size, 0);
    let total = before;
    const removed: Eviction[] = [];
    for (const f of files.sort((a, b) => a.usedAt - b.usedAt)) {
      if (total <= this.maxBytes) break;
      if (f.key === keep || this.inUse.has(f.key) || this.ensuring.has(f.key)) continue;
      await rm(this.pathOf(f.key), { force: true });
      total -= f.size;
      removed.push({
        key: f.key,
        references: [],
        bytes: f.size,
        lastUsedAt: new Date(f.usedAt).toISOString(),
        reason: `least recently used: the cache held ${before} bytes, over its cap of ${this.maxBytes}`,
      });
    }
    if (removed.length > 0) {
      const forgotten = await this.forgetKeys(new Set(removed.map((r) => r.key)));
      for (const r of removed)
        r.references = forgotten.filter(([, key]) => key === r.key).map(([ref]) => ref);
    }
    return removed;
  }

  /** Drops the references to `keys`; returns them ([reference, key]). */
  private async forgetKeys(keys: Set<string>): Promise<[string, string][]> {
    const refs = await this.readRefs();
    const forgotten = Object.entries(refs).filter(([, key]) => keys.has(key));
    for (const [ref] of forgotten) delete refs[ref];
    await this.writeRefs(refs);
    return forgotten;
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

function count(counts: Map<string, number>, key: string, by: 1 | -1): void {
  const next = (counts.get(key) ?? 0) + by;
  if (next > 0) counts.set(key, next);
  else counts.delete(key);
}
