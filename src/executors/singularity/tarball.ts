import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { coerceError } from '../../jobs/errors.js';

/** A tar header block, and the unit member data is padded to. */
const BLOCK = 512;
/** manifest.json of a `docker save` tarball is a few hundred bytes per image; more is no such file. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** What a `docker save` tarball says about its images, from its manifest.json. */
export interface TarballManifest {
  /** Every tag the tarball holds (RepoTags of each image). */
  repoTags: string[];
  /** Whether member names start with "./" (Apptainer's docker-archive reader does not find those). */
  dotPrefixed: boolean;
}

function field(header: Buffer, start: number, length: number): string {
  const raw = header.subarray(start, start + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? raw.length : end).toString('utf8');
}

/**
 * Reads manifest.json out of a `docker save` tarball by walking its headers (member data is
 * skipped, so a tarball of gigabytes costs a few reads per member). Rejects, saying why, when
 * the file is no tar or has no manifest.
 */
export async function readTarballManifest(path: string): Promise<TarballManifest> {
  const file = await open(path, 'r');
  try {
    const header = Buffer.alloc(BLOCK);
    let offset = 0;
    let dotPrefixed = false;
    for (;;) {
      const { bytesRead } = await file.read(header, 0, BLOCK, offset);
      if (bytesRead < BLOCK || header.every((b) => b === 0)) break;
      const size = Number.parseInt(field(header, 124, 12).trim() || '0', 8);
      const magic = field(header, 257, 6);
      if (!Number.isFinite(size) || !magic.startsWith('ustar')) {
        throw new Error(`not a tar archive (no ustar header at byte ${offset})`);
      }
      const prefix = field(header, 345, 155);
      const name = prefix ? `${prefix}/${field(header, 0, 100)}` : field(header, 0, 100);
      if (name.startsWith('./') && name !== './') dotPrefixed = true;
      if (name.replace(/^\.\//, '') === 'manifest.json') {
        if (size > MAX_MANIFEST_BYTES) throw new Error(`manifest.json is ${size} bytes, too large`);
        const body = Buffer.alloc(size);
        await file.read(body, 0, size, offset + BLOCK);
        return { ...parseManifest(body), dotPrefixed: dotPrefixed || name.startsWith('./') };
      }
      offset += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
    }
    throw new Error('no manifest.json in it (is it a "docker save" tarball?)');
  } finally {
    await file.close();
  }
}

/** The tags of a manifest.json's bytes. */
export function parseManifest(body: Buffer): Omit<TarballManifest, 'dotPrefixed'> {
  let images: unknown;
  try {
    images = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new Error(`manifest.json is not JSON: ${coerceError(error).message}`);
  }
  if (!Array.isArray(images)) throw new Error('manifest.json is not a list of images');
  const repoTags = images.flatMap((image: unknown) => {
    const tags = (image as { RepoTags?: unknown } | null)?.RepoTags;
    return Array.isArray(tags) ? tags.filter((t): t is string => typeof t === 'string') : [];
  });
  return { repoTags };
}

/**
 * The SIF cache's key for a tarball: the sha256 of all its bytes. manifest.json alone names the
 * layers by file name, not by content, so two tarballs with one manifest and other layers would
 * share a SIF; every byte of the tarball is what the SIF is made from.
 */
export async function tarballDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Copies the tarball to `target` (the conversion's private directory), and rejects unless the
 * copy's sha256 is `digest`: the SIF is made from the copy, so what is cached under the key is
 * what the key names, even if the tarball is replaced while it converts.
 */
export async function copyTarball(path: string, target: string, digest: string): Promise<void> {
  const hash = createHash('sha256');
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  await pipeline(createReadStream(path), hashing, createWriteStream(target, { mode: 0o600 }));
  const copied = hash.digest('hex');
  if (copied !== digest) {
    throw new Error(`it changed while it was being loaded (sha256 ${digest}, then ${copied}); try again`);
  }
}
