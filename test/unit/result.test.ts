import { describe, expect, it } from 'vitest';
import { signalFromExitCode, terminationReason, utf8Tail } from '../../src/jobs/result.js';
import { parseRam } from '../../src/jobs/spec-fields.js';

describe('result helpers', () => {
  it.each([
    [0, null],
    [1, null],
    [128, null],
    [137, 'SIGKILL'],
    [143, 'SIGTERM'],
    [130, 'SIGINT'],
    [255, null],
  ])('exit code %i → signal %s', (code, name) => {
    expect(signalFromExitCode(code)).toBe(name);
  });

  it('says oom only on the runtime flag, never for a stop we sent', () => {
    expect(terminationReason({ exitCode: 137, oomKilled: true, stopReason: null })).toEqual({
      state: 'Complete',
      reason: 'oom',
      signal: 'SIGKILL',
    });
    expect(terminationReason({ exitCode: 137, oomKilled: false, stopReason: 'cancelled' })).toEqual({
      state: 'Cancelled',
      reason: 'cancelled',
      signal: 'SIGKILL',
    });
    expect(terminationReason({ exitCode: 137, oomKilled: false, stopReason: null }).reason).toBe('signalled');
    expect(terminationReason({ exitCode: 3, oomKilled: false, stopReason: 'timeout' }).reason).toBe(
      'timeout',
    );
    expect(terminationReason({ exitCode: 42, oomKilled: false, stopReason: null })).toEqual({
      state: 'Complete',
      reason: 'exited',
      signal: null,
    });
  });

  it('cuts tails on a UTF-8 boundary', () => {
    const text = 'é'.repeat(3000); // 2 bytes each
    const tail = utf8Tail(Buffer.from(text), 4095);
    expect(tail).toBe('é'.repeat(2047));
    expect(utf8Tail(Buffer.from('abc'), 4096)).toBe('abc');
    expect(utf8Tail(Buffer.from('x€'), 2)).toBe('');
  });

  it.each([
    [1024, 1024],
    ['1024', 1024],
    ['512Mi', 512 * 1024 ** 2],
    ['2Gi', 2 * 1024 ** 3],
    ['1.5G', 1.5e9],
    ['10K', 10_000],
    ['lots', undefined],
  ])('parses ram %j', (input, bytes) => {
    expect(parseRam(input)).toBe(bytes);
  });
});
