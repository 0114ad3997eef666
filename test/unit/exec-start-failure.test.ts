import { text } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { execStartExitCode, StartFailureFilter } from '../../src/executors/docker/exec-start-failure.js';

const through = async (...chunks: string[]) => {
  const filter = new StartFailureFilter();
  const out = text(filter);
  for (const chunk of chunks) filter.write(Buffer.from(chunk));
  filter.end();
  return { out: await out, failure: filter.failure };
};

const RUNC = 'OCI runtime exec failed: exec failed: unable to start container process: exec: "nope": ';

describe("Docker's exec start failures", () => {
  it('keeps the engine’s message apart, even cut into pieces', async () => {
    const { out, failure } = await through(
      'OCI run',
      'time exec failed: ',
      'exec: "nope": no such file or directory\r\n',
    );
    expect(out).toBe('');
    expect(failure).toMatch(/^OCI runtime exec failed: exec: "nope": no such file or directory/);
  });

  it('passes the program’s own output through untouched, short or long', async () => {
    expect(await through('O')).toEqual({ out: 'O', failure: null });
    expect(await through('OCI is a word', ' the program printed')).toEqual({
      out: 'OCI is a word the program printed',
      failure: null,
    });
    expect(await through('hello\n', 'OCI runtime exec failed later\n')).toEqual({
      out: 'hello\nOCI runtime exec failed later\n',
      failure: null,
    });
  });

  it('says 127 for a missing program and keeps 126 for one that cannot run', () => {
    expect(execStartExitCode(126, `${RUNC}executable file not found in $PATH: unknown`)).toBe(127);
    expect(execStartExitCode(126, `${RUNC}stat /nope: no such file or directory: unknown`)).toBe(127);
    expect(execStartExitCode(126, `${RUNC}permission denied: unknown`)).toBe(126);
    expect(execStartExitCode(126, null)).toBe(126);
    expect(execStartExitCode(3, `${RUNC}executable file not found`)).toBe(3);
  });
});
