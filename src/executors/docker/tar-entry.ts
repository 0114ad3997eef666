import { posix } from 'node:path';

/**
 * The parts of a tar header (POSIX ustar, pax and GNU extensions) that tell what an entry is
 * and how long its data is: enough to walk a `docker save` tarball as Go's archive/tar (which
 * the engines use) reads it, without unpacking it.
 */

/** A tar header block, and the unit member data is padded to. */
export const BLOCK = 512;

export interface TarHeader {
  /** The name as the header holds it (ustar prefix joined); pax or GNU long names override it. */
  name: string;
  /** Data bytes after the header (before padding); a pax `size` overrides it. */
  size: number;
  /** '0' regular, '1' hard link, '2' symlink, '5' directory, 'x' pax, 'g' pax global, 'L' GNU long name, … */
  type: string;
}

function field(header: Buffer, start: number, length: number): string {
  const raw = header.subarray(start, start + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? raw.length : end).toString('utf8');
}

/** A numeric field: octal text, or base-256 when its first byte has the high bit (GNU, for sizes past 8 GiB). */
function numeric(header: Buffer, start: number, length: number): number {
  if ((header[start] as number) & 0x80) {
    let value = (header[start] as number) & 0x7f;
    for (let i = start + 1; i < start + length; i++) value = value * 256 + (header[i] as number);
    return value;
  }
  const text = field(header, start, length).trim();
  return text === '' ? 0 : /^[0-7]+$/.test(text) ? Number.parseInt(text, 8) : Number.NaN;
}

/** Go's archive/tar accepts a header whose checksum is the unsigned or the signed sum of its bytes. */
function checksumHolds(header: Buffer): boolean {
  const stored = numeric(header, 148, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : (header[i] as number);
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

export const isZeroBlock = (block: Buffer): boolean => block.every((b) => b === 0);

/** The header in `block`; throws, saying why, when it is none Go would read. */
export function parseHeader(block: Buffer): TarHeader {
  if (!checksumHolds(block)) throw new Error('a tar header has a bad checksum');
  const size = numeric(block, 124, 12);
  if (!Number.isSafeInteger(size) || size < 0) throw new Error('a tar header has no valid size');
  const type = String.fromCharCode(block[156] as number);
  const name = field(block, 0, 100);
  // The prefix field is ustar's (magic "ustar\0"); GNU headers ("ustar  ") keep other data there.
  const ustar = block.subarray(257, 263).equals(Buffer.from('ustar\0', 'binary'));
  const prefix = ustar ? field(block, 345, 155) : '';
  return { name: prefix ? `${prefix}/${name}` : name, size, type: type === '\0' ? '0' : type };
}

/** The records of a pax extended header's data ("<len> <key>=<value>\n" each). */
export function paxRecords(data: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    const length = Number.parseInt(data.subarray(at, space).toString('ascii'), 10);
    if (space === -1 || !Number.isSafeInteger(length) || length <= 0 || at + length > data.length) {
      throw new Error('a pax header is malformed');
    }
    const record = data.subarray(space + 1, at + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq === -1) throw new Error('a pax record has no "="');
    records.set(record.slice(0, eq), record.slice(eq + 1));
    at += length;
  }
  return records;
}

/**
 * Where an entry lands in the directory the engine unpacks the tarball into: leading "/" and
 * "./" dropped, "." and ".." segments applied (Docker unpacks, then reads files by path).
 */
export function landingPath(name: string): string {
  const normal = posix.normalize(`/${name}`).replace(/^\/+/, '').replace(/\/+$/, '');
  return normal;
}

/** The header block of a regular file entry like `original`, with `size` bytes of data and a fresh checksum. */
export function resizedHeader(original: Buffer, size: number): Buffer {
  const header = Buffer.from(original);
  header.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 12, 'ascii');
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return header;
}

/** Zero bytes that pad `size` bytes of data to whole blocks. */
export const paddingOf = (size: number): number => (BLOCK - (size % BLOCK)) % BLOCK;
