import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SifCache } from '../../src/executors/singularity/sif-cache.js';
import { copyTarball, parseManifest, tarballDigest } from '../../src/executors/singularity/tarball.js';
import { tarOf } from '../helpers/tar.js';

const key = (c: string) => c.repeat(64);
const dirs: string[] = [];
async function cache(maxBytes: number): Promise<SifCache> {
  const dir = await mkdtemp(join(tmpdir(), 'sif-cache-'));
  dirs.push(dir);
  return new SifCache(dir, maxBytes);
}
/** A promise and its resolve (Promise.withResolvers is Node 22). */
function opened(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
const writeBytes = (n: number) => async (target: string) => writeFile(target, Buffer.alloc(n));

afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('SifCache', () => {
  it('converts once per digest, also when asked concurrently', async () => {
    const c = await cache(1000);
    let conversions = 0;
    const convert = async (target: string) => {
      conversions += 1;
      await writeFile(target, 'sif');
    };
    const [a, b] = await Promise.all([c.ensure(key('a'), convert), c.ensure(key('a'), convert)]);
    expect(conversions).toBe(1);
    expect([a.converted, b.converted].sort()).toEqual([false, true]);
    expect((await c.ensure(key('a'), convert)).converted).toBe(false);
  });

  it('evicts the least recently used past the cap, never one in use or the newest', async () => {
    const c = await cache(250);
    await c.ensure(key('a'), writeBytes(100));
    await c.ensure(key('b'), writeBytes(100));
    await utimes(c.pathOf(key('a')), new Date(1000), new Date(1000));
    await utimes(c.pathOf(key('b')), new Date(2000), new Date(2000));
    const release = await c.acquire(key('a')); // used now: b is the least recently used
    await c.ensure(key('c'), writeBytes(100));
    expect((await readdir(c.dir)).filter((n) => n.endsWith('.sif')).sort()).toEqual([
      `${key('a')}.sif`,
      `${key('c')}.sif`,
    ]);
    release();
    await utimes(c.pathOf(key('a')), new Date(1000), new Date(1000));
    await c.ensure(key('d'), writeBytes(100));
    expect(await c.has(key('a'))).toBe(false);
    expect(await c.has(key('c'))).toBe(true);
  });

  it('remembers references by digest and forgets those whose SIF was evicted', async () => {
    const c = await cache(150);
    await c.ensure(key('a'), writeBytes(100));
    await c.remember('docker.io/library/busybox:1', key('a'));
    expect(await c.lookup('docker.io/library/busybox:1')).toBe(key('a'));
    await utimes(c.pathOf(key('a')), new Date(1000), new Date(1000));
    await c.ensure(key('b'), writeBytes(100));
    expect(await c.lookup('docker.io/library/busybox:1')).toBeNull();
  });

  it('says which images it evicted, how big, when last used and why', async () => {
    const c = await cache(250);
    await c.ensure(key('a'), writeBytes(100));
    await c.remember('127.0.0.1:5000/app:1', key('a'));
    await c.ensure(key('b'), writeBytes(100));
    await utimes(c.pathOf(key('a')), new Date(1000), new Date(1000));
    const { evicted } = await c.ensure(key('c'), writeBytes(100));
    expect(evicted).toEqual([
      {
        key: key('a'),
        references: ['127.0.0.1:5000/app:1'],
        bytes: 100,
        lastUsedAt: new Date(1000).toISOString(),
        reason: 'least recently used: the cache held 300 bytes, over its cap of 250',
      },
    ]);
  });

  it('keeps its cap under concurrent conversions, each eviction reported once', async () => {
    const c = await cache(250); // two 100-byte SIFs fit
    const keys = ['a', 'b', 'c', 'd', 'e', 'f'].map(key);
    // Conversions finish in an order unlike the one they began in, all while the others run.
    const gates = keys.map(() => opened());
    const results = keys.map((k, i) =>
      c.ensure(k, async (target) => {
        await gates[i]?.promise;
        await writeFile(target, Buffer.alloc(100));
      }),
    );
    for (const i of [3, 0, 5, 1, 4, 2]) gates[i]?.resolve();
    const done = await Promise.all(results);
    const left = (await readdir(c.dir)).filter((n) => n.endsWith('.sif'));
    expect(left.length * 100).toBeLessThanOrEqual(250);
    const evicted = done.flatMap((d) => d.evicted.map((e) => e.key));
    expect(new Set(evicted).size).toBe(evicted.length);
    expect([...evicted, ...left.map((n) => n.slice(0, -4))].sort()).toEqual([...keys].sort());
  });

  it('marks a hit as used, so a conversion right after evicts another image, not the one just handed out', async () => {
    const c = await cache(250);
    await c.ensure(key('a'), writeBytes(100));
    await c.ensure(key('e'), writeBytes(100));
    await utimes(c.pathOf(key('a')), new Date(1000), new Date(1000));
    await utimes(c.pathOf(key('e')), new Date(2000), new Date(2000));
    expect((await c.ensure(key('a'), writeBytes(100))).converted).toBe(false);
    const { evicted } = await c.ensure(key('c'), writeBytes(100));
    expect(evicted.map((e) => e.key)).toEqual([key('e')]);
    expect(await c.has(key('a'))).toBe(true);
  });

  it('rejects a key that is no sha256 digest', async () => {
    expect(() => new SifCache('/x').pathOf('../etc')).toThrow(/not a sha256 digest/);
  });
});

describe('tarball keys', () => {
  it('lists the tags of a manifest.json', () => {
    const body = Buffer.from('[{"Config":"c.json","RepoTags":["a/b:1","a/b:2"],"Layers":["l/layer.tar"]}]');
    expect(parseManifest(body).repoTags).toEqual(['a/b:1', 'a/b:2']);
    expect(() => parseManifest(Buffer.from('{}'))).toThrow(/not a list/);
  });

  it('keys a tarball by all its bytes: one manifest.json with other layers is another key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stevedore-tarball-key-'));
    try {
      const manifest = '[{"Config":"c.json","RepoTags":["a/b:1"],"Layers":["l/layer.tar"]}]';
      const tarball = async (name: string, layer: string): Promise<string> => {
        const path = join(dir, name);
        await writeFile(
          path,
          tarOf([
            { name: 'l/layer.tar', data: layer },
            { name: 'manifest.json', data: manifest },
          ]),
        );
        return path;
      };
      const [a, b, a2] = [
        await tarball('a.tar', 'one'),
        await tarball('b.tar', 'two'),
        await tarball('a2.tar', 'one'),
      ];
      const [ka, kb, ka2] = [await tarballDigest(a), await tarballDigest(b), await tarballDigest(a2)];
      expect(ka).toMatch(/^[0-9a-f]{64}$/);
      expect(kb).not.toBe(ka);
      expect(ka2).toBe(ka);
      await copyTarball(a, join(dir, 'copy.tar'), ka);
      expect(await readFile(join(dir, 'copy.tar'))).toEqual(await readFile(a));
      await expect(copyTarball(b, join(dir, 'copy2.tar'), ka)).rejects.toThrow(
        /changed while it was being loaded/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
