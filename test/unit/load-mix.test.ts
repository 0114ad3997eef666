import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { usedMemory } from '../../load/engine.js';
import {
  allowedStarts,
  checkResult,
  EXIT_CODE,
  expectedOutput,
  OUTPUT_BYTES,
  parseMix,
  planJobs,
  sha256,
} from '../../load/mix.js';
import { LOAD_BLOCK, percentile, SENTINEL_BLOCK, writeBlock } from '../../load/report.js';
import { emptyStream, type JobResult } from '../../src/jobs/result.js';

const result = (over: Partial<JobResult>): JobResult =>
  ({
    jobId: 'j',
    state: 'Complete',
    reason: 'exited',
    exitCode: 0,
    stdout: emptyStream(),
    ...over,
  }) as JobResult;

describe('the load mix', () => {
  it('parses weights and names a bad entry', () => {
    expect(parseMix('trivial=3,invalid=1')).toMatchObject({ trivial: 3, invalid: 1, output: 0 });
    expect(() => parseMix('trivial=3,slow=1')).toThrow('--mix: unknown kind "slow"');
    expect(() => parseMix('exit=-1')).toThrow('--mix: exit=-1 is not a non-negative integer weight');
    expect(() => parseMix('exit=0')).toThrow('--mix: every weight is 0');
  });

  it('plans the mix in proportion, half through each submitter, with ids BullMQ accepts', () => {
    const jobs = planJobs(40, parseMix('trivial=3,exit=1'), 'r1');
    expect(jobs.filter((j) => j.kind === 'trivial')).toHaveLength(30);
    expect(jobs.filter((j) => j.via === 'bullmq')).toHaveLength(20);
    expect(jobs.every((j) => !j.id.includes(':') && !/^\d+$/.test(j.id))).toBe(true);
  });

  it('accepts the right result of each kind and names what is wrong in another', () => {
    const exit = { id: 'j', kind: 'exit', via: 'client' } as const;
    expect(checkResult(exit, result({ exitCode: EXIT_CODE }))).toBeNull();
    expect(checkResult(exit, result({ exitCode: 0 }))).toBe('exit job j: exitCode is 0, expected 7');
    const cancel = { id: 'j', kind: 'cancel', via: 'bullmq' } as const;
    expect(checkResult(cancel, result({ state: 'Cancelled', reason: 'timeout' }))).toBe(
      'cancel job j: reason is "timeout", expected "cancelled"',
    );
    expect(checkResult(exit, result({ jobId: 'k', exitCode: EXIT_CODE }))).toBe(
      "exit job j: the result is job k's",
    );
  });

  it('checks a 1 MB output by the hash of its file, byte-exact', () => {
    const job = { id: 'load-x-1', kind: 'output', via: 'client' } as const;
    const data = expectedOutput(job.id);
    expect(data.length).toBe(OUTPUT_BYTES);
    const ok = result({ jobId: job.id, stdout: { ...emptyStream(), bytes: OUTPUT_BYTES } });
    expect(checkResult(job, ok, sha256(data))).toBeNull();
    const flipped = Buffer.from(data);
    flipped[OUTPUT_BYTES - 1] = 0x21;
    expect(checkResult(job, ok, sha256(flipped))).toMatch(
      /^output job load-x-1: the stdout file's sha256 is /,
    );
    expect(checkResult(job, ok, null)).toMatch(/sha256 is missing/);
  });

  it('allows a cancel or timeout job never to start, and no invalid one to start', () => {
    expect(allowedStarts('cancel')).toEqual({ min: 0, max: 1 });
    expect(allowedStarts('trivial')).toEqual({ min: 1, max: 1 });
    expect(allowedStarts('invalid')).toEqual({ min: 0, max: 0 });
  });
});

describe('the load report', () => {
  it('takes nearest-rank percentiles', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    expect([percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99)]).toEqual([
      50, 95, 99,
    ]);
    expect(percentile([], 0.5)).toBe(0);
  });

  it('reads used_memory from INFO memory', () => {
    expect(usedMemory('# Memory\r\nused_memory:1234\r\nused_memory_human:1.2K\r\n')).toBe(1234);
    expect(() => usedMemory('# Memory\r\n')).toThrow('no used_memory line');
  });

  it('replaces only its own block of BENCHMARKS.md', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'load-report-'));
    const path = join(dir, 'BENCHMARKS.md');
    try {
      await writeFile(path, '# Benchmarks\n\nnotes\n');
      await writeBlock(LOAD_BLOCK, 'first', path);
      await writeBlock(SENTINEL_BLOCK, 'failover', path);
      await writeBlock(LOAD_BLOCK, 'second', path);
      const text = await readFile(path, 'utf8');
      expect(text).toBe(
        `# Benchmarks\n\nnotes\n\n## Load test\n\n${LOAD_BLOCK.start}\nsecond\n${LOAD_BLOCK.end}\n\n## Sentinel failover under load\n\n${SENTINEL_BLOCK.start}\nfailover\n${SENTINEL_BLOCK.end}\n`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
