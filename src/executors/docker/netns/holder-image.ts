import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import { imagePresent, loadFailure, readLoadResponse } from '../image.js';

/**
 * The image of the network-namespace holders (see holders.ts): one static program that
 * sleeps for a fixed time and exits. Written here byte by byte, so a worker needs no registry,
 * no tarball and no compiler to make it. Only x86-64 engines get one; elsewhere every job gets
 * a fresh namespace as before.
 */

const LOAD_ADDRESS = 0x400000n;
const ELF_HEADER_SIZE = 64;
const PROGRAM_HEADER_SIZE = 56;
const CODE_OFFSET = ELF_HEADER_SIZE + PROGRAM_HEADER_SIZE;

/**
 * x86-64 machine code: nanosleep(&duration, NULL); exit_group(0); duration: {seconds, 0}.
 *   lea rdi, [rip + 18]   48 8d 3d 12 00 00 00   (the timespec right after the code)
 *   xor esi, esi          31 f6
 *   mov eax, 35           b8 23 00 00 00         (nanosleep)
 *   syscall               0f 05
 *   xor edi, edi          31 ff
 *   mov eax, 231          b8 e7 00 00 00         (exit_group)
 *   syscall               0f 05
 */
const X86_64_CODE = Buffer.from('488d3d1200000031f6b8230000000f0531ffb8e70000000f05', 'hex');

/** A static x86-64 ELF executable that sleeps `seconds` and exits 0. Pure. */
export function holderProgram(seconds: number): Buffer {
  if (!Number.isInteger(seconds) || seconds < 1)
    throw new Error(`holder lifetime must be ≥ 1 s, got ${seconds}`);
  const timespec = Buffer.alloc(16);
  timespec.writeBigInt64LE(BigInt(seconds), 0);
  const size = CODE_OFFSET + X86_64_CODE.length + timespec.length;

  const elf = Buffer.alloc(ELF_HEADER_SIZE);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0], 0); // magic, 64-bit, little endian, version 1, System V
  elf.writeUInt16LE(2, 16); // executable
  elf.writeUInt16LE(0x3e, 18); // x86-64
  elf.writeUInt32LE(1, 20);
  elf.writeBigUInt64LE(LOAD_ADDRESS + BigInt(CODE_OFFSET), 24); // entry point
  elf.writeBigUInt64LE(BigInt(ELF_HEADER_SIZE), 32); // program headers follow the ELF header
  elf.writeUInt16LE(ELF_HEADER_SIZE, 52);
  elf.writeUInt16LE(PROGRAM_HEADER_SIZE, 54);
  elf.writeUInt16LE(1, 56); // one program header, no sections

  const load = Buffer.alloc(PROGRAM_HEADER_SIZE);
  load.writeUInt32LE(1, 0); // PT_LOAD
  load.writeUInt32LE(5, 4); // read + execute
  load.writeBigUInt64LE(LOAD_ADDRESS, 16);
  load.writeBigUInt64LE(LOAD_ADDRESS, 24);
  load.writeBigUInt64LE(BigInt(size), 32);
  load.writeBigUInt64LE(BigInt(size), 40);
  load.writeBigUInt64LE(0x1000n, 48);

  return Buffer.concat([elf, load, X86_64_CODE, timespec]);
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

/** A tar archive (ustar) holding one executable file at the top level. Pure. */
export function singleFileTar(name: string, content: Buffer): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name too long: ${name}`);
  const header = Buffer.alloc(512);
  header.write(name, 0);
  header.write(octal(0o755, 8), 100);
  header.write(octal(0, 8), 108);
  header.write(octal(0, 8), 116);
  header.write(octal(content.length, 12), 124);
  header.write(octal(0, 12), 136);
  header.write(' '.repeat(8), 148); // the checksum is computed with its own field as spaces
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  const checksum = header.reduce((sum, byte) => sum + byte, 0);
  header.write(`${checksum.toString(8).padStart(6, '0')}\0 `, 148);
  const padding = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([header, content, padding, Buffer.alloc(1024)]);
}

export const HOLDER_ENTRYPOINT = '/holder';

/** The repository of the holder images: the worker's own, never a job's (DockerImages refuses it). */
export const HOLDER_REPOSITORY = 'stevedore/netns-holder';

/** The holder image's reference for a lifetime: the tag names the program's bytes. */
export function holderImageName(seconds: number): string {
  const digest = createHash('sha256').update(holderProgram(seconds)).digest('hex').slice(0, 12);
  return `${HOLDER_REPOSITORY}:${digest}`;
}

/**
 * Makes the holder image for `seconds` present on the engine (imports it when missing).
 * Resolves with its name, or null when the engine is not x86-64.
 */
export async function ensureHolderImage(docker: Dockerode, seconds: number): Promise<string | null> {
  const version = await docker.version();
  if (version.Arch !== 'amd64' || version.Os !== 'linux') return null;
  const name = holderImageName(seconds);
  if (await imagePresent(docker, name)) return name;
  const [repo, tag] = name.split(':') as [string, string];
  const tar = singleFileTar(HOLDER_ENTRYPOINT.slice(1), holderProgram(seconds));
  const response = (await docker.importImage(Readable.from([tar]), { repo, tag })) as NodeJS.ReadableStream;
  const failure = loadFailure(await readLoadResponse(response));
  if (failure) throw new Error(`the engine could not import the ${name} image: ${failure}`);
  return name;
}
