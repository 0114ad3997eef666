import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { testSingularityBin } from '../helpers/singularity.js';
import { testPolicy, useTestWorld, writePolicy } from '../helpers/stevedore.js';
import { imageTarball } from '../helpers/tar.js';

/**
 * Apptainer's SIF cache keys a tarball by what is in it: two tarballs whose manifest.json is the
 * same byte for byte, with other layers, are two images and run as two.
 */
const bin = await testSingularityBin();
const dir = await mkdtemp(join(tmpdir(), 'stevedore-sif-tarball-key-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

const IMAGE = 'stevedore-test/same-manifest:1';

describe.skipIf(bin === null)('SIFs of tarballs on Apptainer', () => {
  if (bin === null) console.warn('[skip] SIF tarball keys: neither apptainer nor singularity is installed');
  const world = useTestWorld();

  it('two tarballs with one manifest.json and other layers get their own SIFs', async () => {
    const busybox = await readFile('/bin/busybox');
    const made = (variant: string) =>
      imageTarball({
        repoTags: [IMAGE],
        label: 'same',
        fixedNames: true,
        files: [
          { name: 'bin/', type: '5', mode: 0o755 },
          { name: 'bin/busybox', data: busybox, mode: 0o755 },
          { name: 'variant', data: variant },
        ],
      }).tar;
    const [a, b] = [made('variant-a'), made('variant-b')];
    const manifest = (tar: Buffer) => {
      const at = tar.indexOf('manifest.json');
      return tar.subarray(at + 512, at + 512 + 100).toString();
    };
    expect(manifest(a)).toBe(manifest(b));
    await writeFile(join(dir, 'a.tar'), a);
    await writeFile(join(dir, 'b.tar'), b);
    const sifCache = join(dir, 'sif');
    const policyDir = await mkdtemp(join(dir, 'policy-'));
    await world.h.worker({
      runtime: 'singularity',
      singularity: { bin: bin as string, sifCache },
      policyPath: await writePolicy(policyDir, { ...testPolicy(), imageTarballs: [{ hostPath: dir }] }),
    });
    const client = world.h.client();
    const run = async (tarball: string) => {
      const { id } = await client.submit({
        image: IMAGE,
        imageTarball: join(dir, tarball),
        // Load from the tarball every time, as a job that brings a new build of the same tag does.
        imagePullPolicy: 'always',
        command: ['/bin/busybox', 'cat', '/variant'],
      });
      return client.waitForResult(id, { timeoutMs: 120_000 });
    };
    const ranA = await run('a.tar');
    const ranB = await run('b.tar');
    expect(ranA).toMatchObject({ state: 'Complete', exitCode: 0, stdout: { tail: 'variant-a' } });
    expect(ranB).toMatchObject({ state: 'Complete', exitCode: 0, stdout: { tail: 'variant-b' } });
    expect(ranB.imageId).not.toBe(ranA.imageId);
    expect((await readdir(sifCache)).filter((n) => n.endsWith('.sif'))).toHaveLength(2);
    // The same tarball again is the same SIF.
    const again = await run('a.tar');
    expect(again).toMatchObject({ imageId: ranA.imageId, stdout: { tail: 'variant-a' } });
  });
});
