import { describe, expect, it } from 'vitest';
import { CommandNotFoundError, InfrastructureError } from '../../src/jobs/errors.js';
import { stubRun } from '../helpers/run-harness.js';
import type { StubStep } from '../helpers/stub-executor.js';

const LAUNCH = ['admitted', 'loading-image', 'creating', 'starting', 'running'];

describe('runJob on a stub executor: phases and result', () => {
  it('goes through the phases in order, drives the executor in order and publishes done last', async () => {
    const h = stubRun();
    const { result, error } = await h.run();
    expect(result).toMatchObject({ state: 'Complete', reason: 'exited', exitCode: 0, error: null });
    expect(error).toBeNull();
    expect(h.executor.calls).toEqual([
      'loadImage',
      'runtime',
      'create',
      'start',
      'wait',
      'exitDetails',
      'finalUsage',
      'runtime',
    ]);
    const last = h.published.at(-1);
    expect(last?.phase).toBe('done');
    expect(last?.history.map((entry) => entry.phase)).toEqual([...LAUNCH, 'finalizing', 'done']);
    expect(last).toMatchObject({ attempt: 1, worker: 'worker-1', containerId: 'stub-container' });
    // Coalesced writes, but each one a later snapshot than the one before.
    const lengths = h.published.map((p) => p.history.length);
    expect(lengths).toEqual([...lengths].sort((a, b) => a - b));
    expect(Object.keys(result.phases)).toEqual(['queued', ...LAUNCH, 'finalizing']);
  });

  it('a non-zero exit is data: Complete with exit 3 and no error', async () => {
    const { result, error } = await stubRun({}, { exitCode: 3 }).run();
    expect(result).toMatchObject({ state: 'Complete', reason: 'exited', exitCode: 3, error: null });
    expect(error).toBeNull();
  });

  it.each<[StubStep, string]>([
    ['loadImage', 'loading-image'],
    ['create', 'creating'],
    ['start', 'starting'],
    ['wait', 'running'],
  ])('is pessimistic: %s failing before wait() returns is Failed/infra in phase %s', async (step, phase) => {
    const boom = new Error(`${step} broke`);
    const h = stubRun({}, { failures: { [step]: boom } });
    const { result, error } = await h.run();
    expect(result).toMatchObject({ state: 'Failed', reason: 'infra', exitCode: null });
    expect(result.error).toEqual({ phase, message: `${step} broke` });
    expect(error).toBe(boom);
    expect(
      h.published
        .at(-1)
        ?.history.map((e) => e.phase)
        .slice(-2),
    ).toEqual(['finalizing', 'done']);
  });

  it("an executor's PhaseError keeps its own phase", async () => {
    const failure = new InfrastructureError('creating', 'the engine did not answer');
    const { result } = await stubRun({}, { failures: { create: failure } }).run();
    expect(result.error).toEqual({ phase: 'creating', message: 'creating: the engine did not answer' });
  });

  it('a command that does not exist is exit 127, Complete, with the message kept', async () => {
    const failure = new CommandNotFoundError('command not found in the image: prog');
    const { result, error } = await stubRun({}, { failures: { start: failure } }).run();
    expect(result).toMatchObject({ state: 'Complete', reason: 'exited', exitCode: 127 });
    expect(result.error).toEqual({
      phase: 'starting',
      message: 'starting: command not found in the image: prog',
    });
    expect(error).toBeNull();
  });

  it('builds the result from what the run learned', async () => {
    const h = stubRun(
      { labels: { team: 'a' }, command: ['prog', '--flag'] },
      {
        exitCode: 137,
        oomKilled: true,
        stdout: 'out\n',
        stderr: 'err!\n',
        runsUntilExited: true,
        usage: {
          cpuSeconds: 1.5,
          memoryBytes: 10,
          peakMemoryBytes: 20,
          blockIoBytes: 30,
          memoryLimitBytes: null,
        },
      },
      { usageTiming: { firstMs: 0, everyMs: 1 }, attempt: 2 },
    );
    const outcome = h.run();
    // Usage reaches watchers as progress while the container runs.
    const running = await h.progressSeen((p) => p.usage !== undefined);
    expect(running).toMatchObject({ phase: 'running', usage: { cpuSeconds: 1.5, peakMemoryBytes: 20 } });
    h.executor.exitNow(137);
    const { result } = await outcome;
    expect(result).toMatchObject({
      jobId: 'job-1',
      state: 'Complete',
      reason: 'oom',
      exitCode: 137,
      signal: 'SIGKILL',
      oomKilled: true,
      runtime: 'stub 1.0',
      containerId: 'stub-container',
      cgroupId: 'stub-cgroup',
      image: 'stub/image:1',
      worker: { host: 'stub-host', id: 'worker-1' },
      attempt: 2,
      adopted: false,
      labels: { team: 'a' },
      usage: { cpuSeconds: 1.5, peakMemoryBytes: 20, blockIoBytes: 30 },
      stdout: { bytes: 4, keptBytes: 0, tail: 'out\n', path: null, truncated: false },
      stderr: { bytes: 5, keptBytes: 0, tail: 'err!\n', path: null, truncated: false },
      attempts: [{ attempt: 2, worker: 'worker-1', state: 'Complete', reason: 'oom', error: null }],
    });
    expect(result.startedAt).not.toBeNull();
    expect(h.executor.createdSpec).toMatchObject({
      command: ['prog', '--flag'],
      enableNetwork: false,
      vcpus: 0,
    });
  });

  it("gives the container the worker's pids limit", async () => {
    const h = stubRun({}, {}, { limits: { pidsLimit: 64, maxOutputBytes: 1024 } });
    await h.run();
    expect(h.executor.createdSpec?.pidsLimit).toBe(64);
  });

  it('adopts a container instead of creating one when the runtime can, and says so in the result', async () => {
    const h = stubRun(
      {},
      { capabilities: { adopt: true }, exitCode: 4 },
      { adopt: { containerId: 'left-behind', fromWorker: 'worker-0' } },
    );
    const { result } = await h.run();
    expect(h.executor.calls).not.toContain('create');
    expect(h.executor.calls).not.toContain('start');
    expect(h.executor.adopted).toEqual({ containerId: 'left-behind', alreadyKept: { stdout: 0, stderr: 0 } });
    expect(result).toMatchObject({
      state: 'Complete',
      exitCode: 4,
      containerId: 'left-behind',
      adopted: true,
    });
    expect(result.attempts.map((a) => a.worker)).toEqual(['worker-0', 'worker-1']);
    expect(h.published.at(-1)?.history.map((e) => e.phase)).toEqual([
      'admitted',
      'running',
      'finalizing',
      'done',
    ]);
  });

  it('runs afresh when asked to adopt on a runtime that cannot', async () => {
    const h = stubRun({}, {}, { adopt: { containerId: 'left-behind', fromWorker: 'worker-0' } });
    const { result } = await h.run();
    expect(h.executor.calls).not.toContain('adopt');
    expect(h.executor.calls).toContain('create');
    expect(result).toMatchObject({ state: 'Complete', containerId: 'stub-container' });
  });
});
