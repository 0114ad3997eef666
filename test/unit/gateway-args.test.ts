import { describe, expect, it } from 'vitest';
import { parseExecArgs, parseForwardArgs, parsePorts, parseShellArgs } from '../../src/cli/gateway-args.js';
import { UsageError } from '../../src/cli/usage.js';
import { whyNoGateway } from '../../src/jobs/gateway/reach.js';
import type { JobProgress } from '../../src/jobs/progress.js';
import type { JobStatus } from '../../src/jobs/status.js';

describe('stevedore exec arguments', () => {
  it('takes options before and after the job id, and the command after --', () => {
    const parsed = parseExecArgs([
      '-it',
      'job-1',
      '--user',
      'nobody',
      '-w',
      '/tmp',
      '-e',
      'A=1',
      '--env',
      'B=x=y',
      '--',
      'sh',
      '-c',
      'echo $A',
    ]);
    expect(parsed).toMatchObject({
      help: false,
      jobId: 'job-1',
      command: ['sh', '-c', 'echo $A'],
      user: 'nobody',
      workdir: '/tmp',
      env: { A: '1', B: 'x=y' },
      interactive: true,
      tty: true,
    });
  });

  it("starts the command at the first word after the job id, so the command's own options stay its own", () => {
    const parsed = parseExecArgs(['job-1', '-i', 'sh', '-c', 'exit 3', '--', '-t']);
    expect(parsed.command).toEqual(['sh', '-c', 'exit 3', '--', '-t']);
    expect(parsed.interactive).toBe(true);
    expect(parsed.tty).toBe(false);
  });

  it('keeps a -- that belongs to the command after ours', () => {
    expect(parseExecArgs(['job-1', '--', 'printf', '--', '-x']).command).toEqual(['printf', '--', '-x']);
  });

  it('passes the client flags on (queue, signing key, gateway CA)', () => {
    const parsed = parseExecArgs([
      '--queue',
      'q',
      '--signing-key',
      '/k/ops.key',
      '--gateway-tls-ca',
      '/ca.pem',
      'j',
      'true',
    ]);
    expect(parsed.flags).toMatchObject({
      queue: 'q',
      'signing-key': '/k/ops.key',
      'gateway-tls-ca': '/ca.pem',
    });
  });

  it('refuses, saying what to write: no job id, no command, a bad --env, a relative --workdir, an unknown option', () => {
    expect(() => parseExecArgs([])).toThrow(/needs a job id and a command/);
    expect(() => parseExecArgs(['j'])).toThrow(/needs a command to run: stevedore exec j -- COMMAND/);
    expect(() => parseExecArgs(['j', '--'])).toThrow(/needs a command/);
    expect(() => parseExecArgs(['--', 'j', 'true'])).toThrow(/put the job id before --/);
    expect(() => parseExecArgs(['j', '-e', 'NOVALUE', 'true'])).toThrow(
      /--env "NOVALUE": expected NAME=VALUE/,
    );
    expect(() => parseExecArgs(['j', '-e', '1A=x', 'true'])).toThrow(/expected NAME=VALUE/);
    expect(() => parseExecArgs(['j', '-w', 'rel', 'true'])).toThrow(
      /--workdir "rel": must be an absolute path/,
    );
    expect(() => parseExecArgs(['--bogus', 'j', 'true'])).toThrow(UsageError);
  });

  it('answers --help without a job id', () => {
    expect(parseExecArgs(['--help']).help).toBe(true);
  });
});

describe('stevedore shell and port-forward arguments', () => {
  it('shell takes one job id', () => {
    expect(parseShellArgs(['j', '--queue', 'q'])).toMatchObject({ jobId: 'j', flags: { queue: 'q' } });
    expect(() => parseShellArgs([])).toThrow(/exactly one job id/);
    expect(() => parseShellArgs(['a', 'b'])).toThrow(/exactly one job id/);
  });

  it('reads [LOCAL:]REMOTE: LOCAL defaults to REMOTE, an empty LOCAL is any free port', () => {
    expect(parsePorts('80')).toEqual({ localPort: 80, remotePort: 80 });
    expect(parsePorts('8080:80')).toEqual({ localPort: 8080, remotePort: 80 });
    expect(parsePorts(':80')).toEqual({ localPort: 0, remotePort: 80 });
    expect(parseForwardArgs(['j', '9000:8000'])).toMatchObject({
      jobId: 'j',
      localPort: 9000,
      remotePort: 8000,
    });
  });

  it('refuses ports that are not TCP ports, and a missing argument', () => {
    expect(() => parsePorts('0')).toThrow(/REMOTE port "0" is not a TCP port/);
    expect(() => parsePorts('70000')).toThrow(/not a TCP port/);
    expect(() => parsePorts('x:80')).toThrow(/LOCAL port "x"/);
    expect(() => parsePorts('1:2:3')).toThrow(/expected \[LOCAL:\]REMOTE/);
    expect(() => parsePorts('8o')).toThrow(/not a TCP port/);
    expect(() => parseForwardArgs(['j'])).toThrow(/needs a job id and a port/);
  });
});

const progress = (phase: JobProgress['phase']): JobProgress => ({
  phase,
  at: '2026-12-06T00:00:00Z',
  history: [],
  attempt: 1,
  worker: 'w-7',
});
const status = (state: JobStatus['state'], phase?: JobProgress['phase']): JobStatus => ({
  id: 'j',
  state,
  progress: phase ? progress(phase) : null,
  waiting: null,
  runs: { run: 1, stage: 'under-way', budgets: null, message: '' },
});

describe('why a job has no gateway', () => {
  it('a finished job: exec reaches running jobs only', () => {
    for (const state of ['completed', 'failed'] as const) {
      const error = whyNoGateway('j', status(state, 'done'));
      expect(error.code).toBe('not-running');
      expect(error.message).toMatch(/job j has finished: exec and port-forward reach running jobs only/);
    }
  });

  it('a waiting job, a starting one, an ending one', () => {
    expect(whyNoGateway('j', status('waiting')).message).toMatch(/is not running yet \(it is waiting\)/);
    expect(whyNoGateway('j', status('active', 'loading-image')).message).toMatch(
      /is starting \(phase loading-image\)/,
    );
    expect(whyNoGateway('j', status('active', 'finalizing')).message).toMatch(
      /is ending \(phase finalizing\)/,
    );
  });

  it('a running job on a worker without a gateway names the worker and the setting', () => {
    const error = whyNoGateway('j', status('active', 'running'));
    expect(error.code).toBe('gateway-off');
    expect(error.message).toMatch(
      /runs on worker w-7, which serves no gateway: start that worker with STEVEDORE_GATEWAY=host:port/,
    );
  });
});
