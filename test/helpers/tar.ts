import { createHash } from 'node:crypto';

/** One entry of a tar archive written by tarOf(). */
export interface TarEntry {
  name: string;
  data?: Buffer | string;
  /** '0' file (default), '2' symlink, '5' directory, 'x' pax header, '1' hard link, … */
  type?: string;
  linkname?: string;
  /** The size field to write instead of the data's length (header-only types ignore it). */
  sizeField?: number;
  /** Permission bits (default 0o644). */
  mode?: number;
}

const BLOCK = 512;
const pad = (n: number): Buffer => Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);

/** A ustar header block with a valid checksum. */
function header(entry: TarEntry, size: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(entry.name, 0, 100, 'utf8');
  h.write(`${(entry.mode ?? 0o644).toString(8).padStart(7, '0')}\0`, 100, 8, 'ascii');
  h.write('0000000\0', 108, 8, 'ascii');
  h.write('0000000\0', 116, 8, 'ascii');
  h.write(`${(entry.sizeField ?? size).toString(8).padStart(11, '0')}\0`, 124, 12, 'ascii');
  h.write('00000000000\0', 136, 12, 'ascii');
  h.write(entry.type ?? '0', 156, 1, 'ascii');
  if (entry.linkname) h.write(entry.linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 6, 'binary');
  h.write('00', 263, 2, 'ascii');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return h;
}

/** A pax record "<len> key=value\n" (the length counts itself). */
export function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let length = body.length + 1;
  while (`${length}${body}`.length !== length) length += 1;
  return `${length}${body}`;
}

/** A tar archive of `entries`, ended by two zero blocks (and `trailer` after them, if given). */
export function tarOf(entries: TarEntry[], trailer?: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const data = Buffer.from(entry.data ?? '');
    parts.push(header(entry, data.length), data, pad(data.length));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  if (trailer) parts.push(trailer);
  return Buffer.concat(parts);
}

/** The entries of a tar archive: name, type and data (for checking what a filter sent on). */
export function entriesOf(tar: Buffer): { name: string; type: string; data: Buffer }[] {
  const out: { name: string; type: string; data: Buffer }[] = [];
  for (let at = 0; at + BLOCK <= tar.length; ) {
    const h = tar.subarray(at, at + BLOCK);
    if (h.every((b) => b === 0)) break;
    const name = h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const type = String.fromCharCode(h[156] as number);
    const size = ['1', '2', '5'].includes(type)
      ? 0
      : Number.parseInt(h.subarray(124, 136).toString('ascii'), 8);
    out.push({ name, type, data: tar.subarray(at + BLOCK, at + BLOCK + size) });
    at += BLOCK + size + pad(size).length;
  }
  return out;
}

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

/**
 * A `docker save` tarball of a one-layer image made here (no engine needed): its id is the
 * sha256 of its config, which `label` and `files` change. `repoTags` go into manifest.json, and
 * into a `repositories` file too when `repositories` is set. With `fixedNames` the config and
 * layer are stored as c.json and l/layer.tar, so manifest.json is the same whatever the layer holds.
 */
export function imageTarball(options: {
  repoTags: string[];
  label: string;
  repositories?: boolean;
  files?: TarEntry[];
  fixedNames?: boolean;
}): {
  tar: Buffer;
  imageId: string;
} {
  const layer = tarOf(options.files ?? [{ name: 'hello', data: `made for ${options.label}\n` }]);
  const layerId = sha256(layer);
  const config = JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: ['/hello'], Labels: { made: options.label } },
    rootfs: { type: 'layers', diff_ids: [`sha256:${layerId}`] },
  });
  const imageId = sha256(config);
  const [configName, layerDir] = options.fixedNames ? ['c.json', 'l'] : [`${imageId}.json`, layerId];
  const manifest = JSON.stringify([
    { Config: configName, RepoTags: options.repoTags, Layers: [`${layerDir}/layer.tar`] },
  ]);
  const repositories: Record<string, Record<string, string>> = {};
  for (const tag of options.repoTags) {
    const colon = tag.lastIndexOf(':');
    repositories[tag.slice(0, colon)] = {
      ...repositories[tag.slice(0, colon)],
      [tag.slice(colon + 1)]: layerId,
    };
  }
  const tar = tarOf([
    { name: `${layerDir}/`, type: '5', mode: 0o755 },
    { name: `${layerDir}/layer.tar`, data: layer },
    { name: configName, data: config },
    { name: 'manifest.json', data: manifest },
    ...(options.repositories ? [{ name: 'repositories', data: JSON.stringify(repositories) }] : []),
  ]);
  return { tar, imageId: `sha256:${imageId}` };
}
