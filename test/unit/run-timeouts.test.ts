import { describe, expect, it } from 'vitest';
import { stubRun } from '../helpers/run-harness.js';

const phasesOf = (h: ReturnType<typeof stubRun>): string[] =>
  h.published.at(-1)?.history.map((entry) => entry.phase) ?? [];

describe('runJob on a stub executor: the phase timeouts', () => {
  it('imageSeconds ends a pull that runs too long: Cancelled, timeout in loading-image, nothing created', async () => {
    const h = stubRun({ timeouts: { imageSeconds: 0.05 } }, { pullsUntilAborted: true });
    const { result, error } = await h.run();
    expect(result).toMatchObject({
      state: 'Cancelled',
      reason: 'timeout',
      exitCode: null,
      timeout: {
        field: 'timeouts.imageSeconds',
        name: 'imageSeconds',
        phase: 'loading-image',
        seconds: 0.05,
      },
      error: { phase: 'loading-image' },
    });
    expect(result.error?.message).toMatch(
      /getting the image took 0.05 s, the limit of timeouts.imageSeconds/,
    );
    expect(error).toBeNull();
    expect(h.executor.calls).not.toContain('create');
  });

  it('imageSeconds stops counting once the image is there: a longer run completes', async () => {
    const h = stubRun({ timeouts: { imageSeconds: 0.02 } }, { runsUntilExited: true });
    const outcome = h.run();
    await h.executor.reached('wait');
    await new Promise((r) => setTimeout(r, 100));
    h.executor.exitNow(0);
    expect((await outcome).result).toMatchObject({ state: 'Complete', reason: 'exited', exitCode: 0 });
    expect(h.executor.calls).not.toContain('stop');
  });

  it('startSeconds running out while creating: the container is never started', async () => {
    const h = stubRun({ timeouts: { startSeconds: 0.02 } }, { holds: ['create'] });
    const outcome = h.run();
    await h.executor.reached('create');
    await new Promise((r) => setTimeout(r, 60));
    h.executor.release('create');
    const { result } = await outcome;
    expect(result).toMatchObject({
      state: 'Cancelled',
      reason: 'timeout',
      startedAt: null,
      timeout: { field: 'timeouts.startSeconds', phase: 'creating' },
    });
    expect(h.executor.calls).not.toContain('start');
    expect(phasesOf(h)).toEqual(['admitted', 'loading-image', 'creating', 'finalizing', 'done']);
  });

  it('startSeconds running out while starting: the container is stopped as soon as it runs', async () => {
    const h = stubRun(
      { timeouts: { startSeconds: 0.02 }, stopGraceSeconds: 1 },
      { holds: ['start'], runsUntilExited: true },
    );
    const outcome = h.run();
    await h.executor.reached('start');
    await new Promise((r) => setTimeout(r, 60));
    h.executor.release('start');
    const { result } = await outcome;
    expect(result).toMatchObject({
      state: 'Cancelled',
      reason: 'timeout',
      exitCode: 143,
      timeout: { field: 'timeouts.startSeconds', phase: 'starting' },
    });
    expect(h.executor.count('stop')).toBe(1);
  });

  it('noOutputSeconds stops a silent run with the grace: timeout in running', async () => {
    const h = stubRun(
      { timeouts: { noOutputSeconds: 0.05 }, stopGraceSeconds: 2 },
      { runsUntilExited: true, stdout: 'once\n' },
    );
    const { result } = await h.run();
    expect(h.executor.stopOptions).toEqual([{ graceMs: 2000 }]);
    expect(result).toMatchObject({
      state: 'Cancelled',
      reason: 'timeout',
      exitCode: 143,
      timeout: { field: 'timeouts.noOutputSeconds', name: 'noOutputSeconds', phase: 'running' },
      stdout: { tail: 'once\n' },
    });
    expect(result.error?.message).toMatch(/wrote nothing on stdout or stderr for 0.05 s/);
  });

  it('noOutputSeconds waits while output keeps coming, on either stream', async () => {
    const h = stubRun({ timeouts: { noOutputSeconds: 0.1 } }, { runsUntilExited: true });
    const outcome = h.run();
    await h.executor.reached('wait');
    const spec = h.executor.createdSpec;
    for (let i = 0; i < 8; i++) {
      await new Promise((r) => setTimeout(r, 40));
      (i % 2 === 0 ? spec?.stdout : spec?.stderr)?.write(`line ${i}\n`);
    }
    h.executor.exitNow(0);
    const { result } = await outcome;
    expect(result).toMatchObject({ state: 'Complete', reason: 'exited', exitCode: 0 });
    expect(result).not.toHaveProperty('timeout');
    expect(h.executor.calls).not.toContain('stop');
  });

  it('runSeconds and its old name maxRunTimeSeconds: the result names the field the job used', async () => {
    for (const [spec, field] of [
      [{ timeouts: { runSeconds: 0.05 } }, 'timeouts.runSeconds'],
      [{ maxRunTimeSeconds: 0.05 }, 'maxRunTimeSeconds'],
    ] as const) {
      const h = stubRun({ ...spec, stopGraceSeconds: 1 }, { runsUntilExited: true });
      const { result } = await h.run();
      expect(result).toMatchObject({
        state: 'Cancelled',
        reason: 'timeout',
        exitCode: 143,
        timeout: { field, name: 'runSeconds', phase: 'running', seconds: 0.05 },
      });
    }
  });

  it('a cancel before a timeout keeps its own reason: no timeout in the result', async () => {
    const h = stubRun({ timeouts: { noOutputSeconds: 0.2 } }, { runsUntilExited: true });
    const outcome = h.run();
    await h.executor.reached('wait');
    h.stop.abort('cancelled');
    const { result } = await outcome;
    expect(result).toMatchObject({ state: 'Cancelled', reason: 'cancelled', error: null });
    expect(result).not.toHaveProperty('timeout');
  });

  it('a timeout that finds the program already exited leaves its exit code, and no timeout in the result', async () => {
    const h = stubRun(
      { timeouts: { noOutputSeconds: 0.02 }, stopGraceSeconds: 1 },
      { exitCode: 3, holds: ['wait'] },
    );
    const outcome = h.run();
    await h.executor.reached('stop');
    h.executor.release('wait');
    const { result } = await outcome;
    expect(result).toMatchObject({ state: 'Complete', reason: 'exited', exitCode: 3, error: null });
    expect(result).not.toHaveProperty('timeout');
  });
});
