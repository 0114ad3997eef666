import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import {
  holderImageName,
  holderProgram,
  singleFileTar,
} from '../../src/executors/docker/netns/holder-image.js';

const run = promisify(execFile);
const dir = await mkdtemp(join(tmpdir(), 'stevedore-holder-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('holderProgram', () => {
  it('is a static x86-64 ELF executable whose only segment covers the whole file', () => {
    const elf = holderProgram(600);
    expect(elf.subarray(0, 4)).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
    expect(elf.readUInt16LE(18)).toBe(0x3e);
    expect(elf.readUInt16LE(56)).toBe(1);
    expect(Number(elf.readBigUInt64LE(64 + 32))).toBe(elf.length);
    // The sleep's duration is the last 16 bytes: seconds, then nanoseconds.
    expect(elf.readBigInt64LE(elf.length - 16)).toBe(600n);
    expect(elf.readBigInt64LE(elf.length - 8)).toBe(0n);
  });

  it.runIf(process.arch === 'x64' && process.platform === 'linux')(
    'runs on this host: sleeps its lifetime, then exits 0',
    async () => {
      const path = join(dir, 'holder');
      await writeFile(path, holderProgram(1));
      await chmod(path, 0o755);
      const t0 = performance.now();
      await run(path); // rejects on a non-zero exit or a signal
      expect(performance.now() - t0).toBeGreaterThanOrEqual(950);
    },
  );

  it('refuses a lifetime below one second or not whole', () => {
    expect(() => holderProgram(0)).toThrow(/≥ 1 s/);
    expect(() => holderProgram(1.5)).toThrow(/≥ 1 s/);
  });

  it('names its image by the program bytes, so another lifetime is another image', () => {
    expect(holderImageName(600)).toMatch(/^stevedore\/netns-holder:[0-9a-f]{12}$/);
    expect(holderImageName(600)).toBe(holderImageName(600));
    expect(holderImageName(600)).not.toBe(holderImageName(5));
  });
});

describe('singleFileTar', () => {
  it('is read by tar as one executable file with the exact bytes', async () => {
    const content = holderProgram(3);
    const path = join(dir, 'one.tar');
    await writeFile(path, singleFileTar('holder', content));
    const { stdout } = await run('tar', ['-tvf', path]);
    expect(stdout).toMatch(/^-rwxr-xr-x 0\/0 +161 .* holder\n$/);
    const { stdout: extracted } = await run('tar', ['-xOf', path, 'holder'], { encoding: 'buffer' });
    expect(Buffer.compare(extracted, content)).toBe(0);
  });

  it('pads to whole 512-byte blocks and ends with two empty blocks', () => {
    const tar = singleFileTar('x', Buffer.from('abc'));
    expect(tar.length).toBe(512 + 512 + 1024);
    expect(tar.subarray(1024).every((b) => b === 0)).toBe(true);
  });
});
