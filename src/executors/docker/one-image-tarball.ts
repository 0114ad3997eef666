import { Transform, type TransformCallback } from 'node:stream';
import { coerceError } from '../../jobs/errors.js';
import {
  BLOCK,
  isZeroBlock,
  landingPath,
  paddingOf,
  parseHeader,
  paxRecords,
  resizedHeader,
  type TarHeader,
} from './tar-entry.js';

/**
 * `docker load` applies every RepoTag in a tarball's manifest.json (and a `repositories` file,
 * and Podman an OCI index's names): a tarball a job may name could point `python:3.12`, or the
 * namespace holders' image, at its own layers for every later job. This stream rewrites a
 * `docker save` tarball on its way to the engine so that it names one image under one tag:
 * manifest.json keeps only the first image carrying a wanted tag, with that tag alone;
 * `repositories`, `index.json` and `oci-layout` are left out, so every engine reads manifest.json
 * (Docker 20.10 and Podman 4's docker-archive reader both do). Every other entry passes unchanged.
 *
 * The walk follows Go's archive/tar (which both engines use): pax and GNU long names and sizes,
 * header-only types with no data, the end at the first zero block. A tarball it cannot read the
 * same way (bad checksum, manifest.json as a link or named through an extended header, an entry
 * written through a symbolic link, as Docker's unpacking would follow it) is cut with a broken
 * header, so the engine's load fails and nothing is tagged; `problem` then says why.
 */

/** manifest.json of a `docker save` tarball is a few hundred bytes per image; more is no such file. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** Pax and GNU long-name headers hold a few records; more is no tarball an engine wrote. */
const MAX_EXTENSION_BYTES = 1024 * 1024;
/** Files an engine reads tags or a layout from, other than manifest.json: left out. */
const LEFT_OUT = new Set(['repositories', 'index.json', 'oci-layout']);
/** Entry types Go's archive/tar reads no data for, whatever their size field says. */
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);
/** Extension entries that describe the next one (pax, pax global, GNU long name, GNU long link). */
const EXTENSIONS = new Set(['x', 'g', 'L', 'K']);

type Mode =
  | { kind: 'header' }
  | { kind: 'pass'; left: number }
  | { kind: 'drop'; left: number }
  | {
      kind: 'collect';
      left: number;
      pad: number;
      got: number;
      header: Buffer;
      parsed: TarHeader;
      chunks: Buffer[];
    }
  | { kind: 'done' };

/** What the next entry's extension headers said, and their bytes (held until that entry is decided). */
interface Pending {
  blocks: Buffer[];
  path?: string;
  size?: number;
}

export interface OneImageReport {
  /** Whether a manifest.json went through (rewritten). */
  sawManifest: boolean;
  /** The RepoTag kept (as the tarball wrote it); null when no image carried a wanted tag. */
  kept: string | null;
  /** Why the tarball was cut; null when it passed whole. */
  problem: string | null;
}

export class OneImageTarball extends Transform {
  readonly report: OneImageReport = { sawManifest: false, kept: null, problem: null };
  private mode: Mode = { kind: 'header' };
  private carry = Buffer.alloc(0);
  private pending: Pending = { blocks: [] };
  private readonly links = new Set<string>();

  /** `wanted`: whether a RepoTag names the image the job asked for. */
  constructor(private readonly wanted: (tag: string) => boolean) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let input = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    this.carry = Buffer.alloc(0);
    while (input.length > 0) {
      const mode = this.mode;
      if (mode.kind === 'done') break;
      if (mode.kind === 'pass' || mode.kind === 'drop') {
        const n = Math.min(mode.left, input.length);
        if (mode.kind === 'pass') this.push(input.subarray(0, n));
        mode.left -= n;
        input = input.subarray(n);
        if (mode.left === 0) this.mode = { kind: 'header' };
        continue;
      }
      if (mode.kind === 'collect') {
        const n = Math.min(mode.left + mode.pad - mode.got, input.length);
        mode.chunks.push(Buffer.from(input.subarray(0, n)));
        mode.got += n;
        input = input.subarray(n);
        if (mode.got === mode.left + mode.pad)
          this.collected(mode, Buffer.concat(mode.chunks).subarray(0, mode.left));
        continue;
      }
      if (input.length < BLOCK) {
        this.carry = Buffer.from(input);
        break;
      }
      const block = input.subarray(0, BLOCK);
      input = input.subarray(BLOCK);
      this.header(Buffer.from(block));
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    // The input ended inside an entry or without an end: the engine sees it cut, as it was.
    if (this.mode.kind !== 'done' && this.carry.length > 0) this.push(this.carry);
    done();
  }

  private header(block: Buffer): void {
    if (isZeroBlock(block)) {
      // Go's reader ends here: nothing after it is read, so nothing after it is sent.
      this.push(Buffer.concat([...this.pending.blocks, block, Buffer.alloc(BLOCK)]));
      this.mode = { kind: 'done' };
      return;
    }
    let parsed: TarHeader;
    try {
      parsed = parseHeader(block);
    } catch (error) {
      this.fail(coerceError(error).message);
      return;
    }
    if (EXTENSIONS.has(parsed.type)) {
      if (parsed.size > MAX_EXTENSION_BYTES) this.fail(`a ${parsed.type} header is ${parsed.size} bytes`);
      else this.collect(block, parsed, parsed.size);
      return;
    }
    const name = this.pending.path ?? parsed.name;
    const size = HEADER_ONLY.has(parsed.type) ? 0 : (this.pending.size ?? parsed.size);
    const landing = landingPath(name);
    const segments = landing.split('/');
    for (let i = 1; i < segments.length; i++) {
      if (this.links.has(segments.slice(0, i).join('/'))) {
        this.fail(`entry ${JSON.stringify(name)} would be written through a symbolic link`);
        return;
      }
    }
    if (parsed.type === '2') this.links.add(landing);
    if (landing === 'manifest.json') {
      if (parsed.type !== '0' || this.pending.path !== undefined || this.pending.size !== undefined) {
        this.fail('manifest.json is not a plain file named by its own header');
        return;
      }
      if (size > MAX_MANIFEST_BYTES) {
        this.fail(`manifest.json is ${size} bytes, too large`);
        return;
      }
      this.collect(block, parsed, size);
      return;
    }
    if (LEFT_OUT.has(landing)) {
      this.pending = { blocks: [] };
      this.mode = { kind: 'drop', left: size + paddingOf(size) };
      return;
    }
    this.push(Buffer.concat([...this.pending.blocks, block]));
    this.pending = { blocks: [] };
    this.mode = size > 0 ? { kind: 'pass', left: size + paddingOf(size) } : { kind: 'header' };
  }

  /** Gathers an entry's data (an extension's, or manifest.json's) before deciding what to send. */
  private collect(header: Buffer, parsed: TarHeader, size: number): void {
    const mode = {
      kind: 'collect' as const,
      left: size,
      pad: paddingOf(size),
      got: 0,
      header,
      parsed,
      chunks: [],
    };
    this.mode = mode;
    if (size === 0) this.collected(mode, Buffer.alloc(0));
  }

  /** An extension's data, or manifest.json's, is all here. */
  private collected(mode: Extract<Mode, { kind: 'collect' }>, data: Buffer): void {
    this.mode = { kind: 'header' };
    const { type } = mode.parsed;
    if (EXTENSIONS.has(type)) {
      this.pending.blocks.push(mode.header, ...mode.chunks);
      try {
        if (type === 'x') {
          const records = paxRecords(data);
          const path = records.get('path');
          const size = records.get('size');
          if (path !== undefined) this.pending.path = path;
          if (size !== undefined) {
            if (!/^\d+$/.test(size)) {
              this.fail('a pax header has no valid size');
              return;
            }
            this.pending.size = Number(size);
          }
        } else if (type === 'L') {
          const end = data.indexOf(0);
          this.pending.path = data.subarray(0, end === -1 ? data.length : end).toString('utf8');
        }
      } catch (error) {
        this.fail(coerceError(error).message);
      }
      return;
    }
    let body: Buffer;
    try {
      body = this.oneImage(data);
    } catch (error) {
      this.fail(`manifest.json: ${coerceError(error).message}`);
      return;
    }
    this.report.sawManifest = true;
    this.push(Buffer.concat([...this.pending.blocks, resizedHeader(mode.header, body.length), body]));
    this.push(Buffer.alloc(paddingOf(body.length)));
    this.pending = { blocks: [] };
  }

  /** manifest.json with only the first image that carries a wanted tag, under that tag alone. */
  private oneImage(data: Buffer): Buffer {
    const images: unknown = JSON.parse(data.toString('utf8'));
    if (!Array.isArray(images)) throw new Error('not a list of images');
    this.report.kept = null;
    for (const image of images) {
      if (typeof image !== 'object' || image === null) continue;
      const tags = (image as { RepoTags?: unknown }).RepoTags;
      const tag = Array.isArray(tags)
        ? tags.find((t): t is string => typeof t === 'string' && this.wanted(t))
        : undefined;
      if (tag === undefined) continue;
      this.report.kept = tag;
      return Buffer.from(JSON.stringify([{ ...image, RepoTags: [tag] }]));
    }
    return Buffer.from('[]');
  }

  /** Cuts the tarball with a block no tar reader takes for a header, so the engine's load fails. */
  private fail(problem: string): void {
    this.report.problem ??= problem;
    this.report.kept = null;
    this.push(Buffer.alloc(BLOCK, 0x78));
    this.mode = { kind: 'done' };
  }
}
