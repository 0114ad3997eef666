import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { OneImageTarball } from '../../src/executors/docker/one-image-tarball.js';
import { entriesOf, imageTarball, paxRecord, tarOf } from '../helpers/tar.js';

const WANTED = 'stevedore-test/evil:1';

/** Runs `tar` through the filter in chunks of `chunk` bytes; what came out, and the report. */
async function filtered(tar: Buffer, chunk = 4096) {
  const filter = new OneImageTarball((tag) => tag === WANTED);
  const out: Buffer[] = [];
  const chunks = [];
  for (let i = 0; i < tar.length; i += chunk) chunks.push(tar.subarray(i, i + chunk));
  await pipeline(Readable.from(chunks), filter, async (source: AsyncIterable<Buffer>) => {
    for await (const c of source) out.push(c);
  });
  return { out: Buffer.concat(out), report: filter.report };
}

const manifestOf = (tar: Buffer): unknown =>
  JSON.parse(
    entriesOf(tar)
      .find((e) => e.name === 'manifest.json')
      ?.data.toString() ?? 'null',
  );

describe('a tarball on its way to the engine names one image under one tag', () => {
  it('keeps the wanted tag alone, drops other images, tags and the repositories file; layers pass unchanged', async () => {
    const { tar } = imageTarball({
      repoTags: ['python:3.12', WANTED, 'stevedore-test/victim:1'],
      label: 'x',
      repositories: true,
    });
    for (const chunk of [1, 7, 512, 100_000]) {
      const { out, report } = await filtered(tar, chunk);
      expect(report).toEqual({ sawManifest: true, kept: WANTED, problem: null });
      const manifest = manifestOf(out) as { RepoTags: string[]; Layers: string[] }[];
      expect(manifest).toHaveLength(1);
      expect(manifest[0]?.RepoTags).toEqual([WANTED]);
      const names = entriesOf(out).map((e) => e.name);
      expect(names).not.toContain('repositories');
      const layer = (t: Buffer) => entriesOf(t).find((e) => e.name.endsWith('layer.tar'))?.data;
      expect(layer(out)).toEqual(layer(tar));
    }
  });

  it('an image without the wanted tag: an empty manifest, nothing kept', async () => {
    const { tar } = imageTarball({ repoTags: ['stevedore-test/victim:1'], label: 'x' });
    const { out, report } = await filtered(tar);
    expect(report).toEqual({ sawManifest: true, kept: null, problem: null });
    expect(manifestOf(out)).toEqual([]);
  });

  it('sends nothing after the end of the archive, where Go stops reading', async () => {
    const hidden = tarOf([{ name: 'manifest.json', data: '[{"RepoTags":["python:3.12"]}]' }]);
    const { tar } = imageTarball({ repoTags: [WANTED], label: 'x' });
    const { out } = await filtered(Buffer.concat([tar, hidden]));
    expect(out.length).toBe(tar.length);
    expect(entriesOf(out).filter((e) => e.name === 'manifest.json')).toHaveLength(1);
  });

  it.each([
    ['manifest.json as a symbolic link', [{ name: 'manifest.json', type: '2', linkname: 'other.json' }]],
    ['manifest.json as a hard link', [{ name: 'manifest.json', type: '1', linkname: 'other.json' }]],
    [
      'manifest.json named by a pax header',
      [
        { name: 'PaxHeader', type: 'x', data: paxRecord('path', 'manifest.json') },
        { name: 'innocent', data: '[]' },
      ],
    ],
    [
      'manifest.json named by a GNU long name',
      [
        { name: '././@LongLink', type: 'L', data: 'manifest.json\0' },
        { name: 'innocent', data: '[]' },
      ],
    ],
    [
      'an entry written through a symbolic link',
      [
        { name: 'a', type: '2', linkname: '.' },
        { name: 'a/manifest.json', data: '[]' },
      ],
    ],
  ])('cuts the tarball where engines would read it otherwise: %s', async (_what, entries) => {
    const { out, report } = await filtered(tarOf(entries));
    expect(report.kept).toBeNull();
    expect(report.problem).toMatch(/manifest\.json|symbolic link/);
    // What went out ends in a block no reader takes for a header (bad checksum).
    expect(out.subarray(-512).every((b) => b === 0x78)).toBe(true);
  });

  it('reads a directory with a size field as Go does: no data after it', async () => {
    const { tar } = imageTarball({ repoTags: [WANTED, 'python:3.12'], label: 'x' });
    const withDir = Buffer.concat([tarOf([{ name: 'd/', type: '5', sizeField: 512 }]).subarray(0, 512), tar]);
    const { out, report } = await filtered(withDir);
    expect(report).toEqual({ sawManifest: true, kept: WANTED, problem: null });
    expect((manifestOf(out) as { RepoTags: string[] }[])[0]?.RepoTags).toEqual([WANTED]);
  });

  it('applies a pax size to the next entry, so its data is not read as headers', async () => {
    const fake = tarOf([{ name: 'manifest.json', data: '[{"RepoTags":["python:3.12"]}]' }]).subarray(0, 1024);
    const { tar } = imageTarball({ repoTags: [WANTED], label: 'x' });
    const entries = Buffer.concat([
      tarOf([
        { name: 'PaxHeader', type: 'x', data: paxRecord('size', String(fake.length)) },
        { name: 'blob', data: '', sizeField: 0 },
      ]).subarray(0, 1536),
      fake,
      tar,
    ]);
    const { out, report } = await filtered(entries);
    expect(report).toEqual({ sawManifest: true, kept: WANTED, problem: null });
    expect(out.subarray(1536, 1536 + fake.length)).toEqual(fake);
  });
});
