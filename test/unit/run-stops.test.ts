import { describe, expect, it, vi } from 'vitest';
import { stubRun } from '../helpers/run-harness.js';

const DAY_SECONDS = 24 * 3600;

const phasesOf = (h: ReturnType<typeof stubRun>): string[] =>
  h.published.at(-1)?.history.map((entry) => entry.phase) ?? [];

describe('runJob on a stub executor: stop sources', () => {
  it('a cancel flag set before admission never loads, creates or starts anything', async () => {
    const h = stubRun();
    h.cancelFlag.set = true;
    const { result, error } = await h.run();
    expect(result).toMatchObject({
      state: 'Cancelled',
      reason: 'cancelled',
      exitCode: null,
      containerId: null,
    });
    expect(error).toBeNull();
    expect(h.executor.calls).not.toContain('loadImage');
    expect(phasesOf(h)).toEqual(['admitted', 'finalizing', 'done']);
  });

  it('a cancel while the image loads never creates the container', async () => {
    const h = stubRun({}, { holds: ['loadImage'] });
    const outcome = h.run();
    await h.executor.reached('loadImage');
    h.stop.abort('cancelled');
    h.executor.release('loadImage');
    const { result } = await outcome;
    expect(result).toMatchObject({ state: 'Cancelled', reason: 'cancelled' });
    expect(h.executor.calls).not.toContain('create');
    expect(h.executor.calls).not.toContain('stop');
  });

  it('a cancel flag set once the container exists never starts it', async () => {
    const h = stubRun({}, { holds: ['create'] });
    const outcome = h.run();
    await h.executor.reached('create');
    h.cancelFlag.set = true;
    h.executor.release('create');
    const { result } = await outcome;
    expect(result).toMatchObject({ state: 'Cancelled', reason: 'cancelled', containerId: 'stub-container' });
    expect(h.executor.calls).not.toContain('start');
    expect(h.cancelFlag.reads).toBe(2);
  });

  it('a cancel while running stops with the grace, then finalizes as Cancelled', async () => {
    const h = stubRun({ stopGraceSeconds: 2.5 }, { runsUntilExited: true });
    const outcome = h.run();
    await h.executor.reached('wait');
    h.stop.abort('cancelled');
    const { result, error, interruptedBy } = await outcome;
    expect(h.executor.stopOptions).toEqual([{ graceMs: 2500 }]);
    expect(result).toMatchObject({
      state: 'Cancelled',
      reason: 'cancelled',
      exitCode: 143,
      signal: 'SIGTERM',
    });
    expect(error).toBeNull();
    expect(interruptedBy).toBeNull();
    expect(phasesOf(h).slice(-4)).toEqual(['running', 'stopping', 'finalizing', 'done']);
  });

  it('a cancel that comes while starting stops the container once it runs', async () => {
    const h = stubRun({}, { runsUntilExited: true, holds: ['start'] });
    const outcome = h.run();
    await h.executor.reached('start');
    h.stop.abort('cancelled');
    h.executor.release('start');
    const { result } = await outcome;
    expect(h.executor.count('stop')).toBe(1);
    expect(result).toMatchObject({ state: 'Cancelled', reason: 'cancelled', exitCode: 143 });
  });

  it('the max run time stops the container: Cancelled, reason timeout', async () => {
    const h = stubRun({ maxRunTimeSeconds: 0.05, stopGraceSeconds: 1 }, { runsUntilExited: true });
    const { result } = await h.run();
    expect(h.executor.stopOptions).toEqual([{ graceMs: 1000 }]);
    expect(result).toMatchObject({ state: 'Cancelled', reason: 'timeout', exitCode: 143 });
  });

  it('a max run time that runs out while the image loads never creates the container', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const h = stubRun({ maxRunTimeSeconds: 1 }, { holds: ['loadImage'] });
      const outcome = h.run();
      await h.executor.reached('loadImage');
      vi.advanceTimersByTime(1000);
      h.executor.release('loadImage');
      const { result } = await outcome;
      expect(result).toMatchObject({ state: 'Cancelled', reason: 'timeout', exitCode: null });
      expect(h.executor.calls).not.toContain('create');
    } finally {
      vi.useRealTimers();
    }
  });

  it('a 30-day max run time does not stop a running container at once', async () => {
    const h = stubRun(
      { maxRunTimeSeconds: 30 * DAY_SECONDS },
      {
        runsUntilExited: true,
        usage: { cpuSeconds: 0, memoryBytes: 0, peakMemoryBytes: 0, blockIoBytes: 0, memoryLimitBytes: null },
      },
      { usageTiming: { firstMs: 5, everyMs: 5 } },
    );
    const outcome = h.run();
    // An overflowed setTimeout fires after 1 ms; three usage readings 5 ms apart outlast it.
    await h.executor.reached('usage', 3);
    expect(h.executor.calls).not.toContain('stop');
    h.executor.exitNow(0);
    expect((await outcome).result).toMatchObject({ state: 'Complete', reason: 'exited', exitCode: 0 });
  });

  it('a lost lock lets go of the running container for the job’s new owner: no stop, and release removes nothing', async () => {
    const h = stubRun({ stopGraceSeconds: 30 }, { runsUntilExited: true, capabilities: { adopt: true } });
    const outcome = h.run();
    await h.executor.reached('wait');
    h.stop.abort('lost-lock');
    const { result, interruptedBy, release } = await outcome;
    expect(interruptedBy).toBe('lost-lock');
    expect(result.exitCode).toBeNull();
    await release();
    expect(h.executor.calls).not.toContain('stop');
    expect(h.executor.calls).not.toContain('close');
  });

  it('on a runtime that cannot adopt, a lost lock or a detach removes the container: nobody could take it over', async () => {
    for (const reason of ['lost-lock', 'detach'] as const) {
      const h = stubRun({}, { runsUntilExited: true });
      const outcome = h.run();
      await h.executor.reached('wait');
      h.stop.abort(reason);
      const { interruptedBy, release } = await outcome;
      expect(interruptedBy).toBe(reason);
      expect(h.executor.calls).not.toContain('detach');
      await release();
      expect(h.executor.count('close')).toBe(1);
    }
  });

  it('a lost lock before the container started removes it as usual', async () => {
    const h = stubRun({}, { holds: ['create'] });
    const outcome = h.run();
    await h.executor.reached('create');
    h.stop.abort('lost-lock');
    h.executor.release('create');
    const { interruptedBy, release } = await outcome;
    expect(interruptedBy).toBe('lost-lock');
    expect(h.executor.calls).not.toContain('start');
    await release();
    expect(h.executor.count('close')).toBe(1);
  });

  for (const reason of ['shutdown', 'detach', 'lost-lock', 'cancelled'] as const) {
    it(`a ${reason} that comes after the container exited by itself leaves the result as it was`, async () => {
      const h = stubRun({}, { holds: ['finalUsage'] });
      const outcome = h.run();
      await h.executor.reached('finalUsage');
      h.stop.abort(reason);
      h.executor.release('finalUsage');
      const { result, interruptedBy, release } = await outcome;
      expect(interruptedBy).toBeNull();
      expect(result).toMatchObject({ state: 'Complete', reason: 'exited', exitCode: 0 });
      expect(h.executor.calls).not.toContain('stop');
      expect(h.executor.calls).not.toContain('detach');
      await release();
      expect(h.executor.count('close')).toBe(1);
    });
  }

  it('a shutdown between the program exiting by itself and wait() returning keeps its exit code', async () => {
    // The program exits at start; wait() is held, as when the runtime has not told of the exit yet.
    const h = stubRun({ stopGraceSeconds: 1 }, { exitCode: 3, stdout: 'all of it\n', holds: ['wait'] });
    const outcome = h.run();
    await h.executor.reached('wait');
    h.stop.abort('shutdown');
    await h.executor.reached('stop');
    h.executor.release('wait');
    const { result, interruptedBy, error } = await outcome;
    expect(interruptedBy).toBeNull();
    expect(error).toBeNull();
    expect(result).toMatchObject({ state: 'Complete', reason: 'exited', exitCode: 3 });
    expect(result.stdout.tail).toBe('all of it\n');
    expect(h.executor.count('stop')).toBe(1);
    expect(phasesOf(h).slice(-4)).toEqual(['running', 'stopping', 'finalizing', 'done']);
    expect(h.logs.lines.map((line) => line.msg)).toContain(
      'the container had exited by itself before the stop reached it: its exit code is the answer',
    );
  });

  for (const reason of ['cancelled', 'timeout'] as const) {
    it(`a ${reason} stop that finds the program already exited leaves its result, as one after wait() does`, async () => {
      const h = stubRun({ stopGraceSeconds: 1 }, { exitCode: 3, holds: ['wait'] });
      const outcome = h.run();
      await h.executor.reached('wait');
      h.stop.abort(reason);
      await h.executor.reached('stop');
      h.executor.release('wait');
      const { result, interruptedBy } = await outcome;
      expect(interruptedBy).toBeNull();
      expect(result).toMatchObject({ state: 'Complete', reason: 'exited', exitCode: 3, signal: null });
    });
  }

  it('a timeout due when an already-exited container is adopted stays the answer: the previous owner may have stopped it', async () => {
    // Seen under load: the first worker's timeout stop ended the program (143), then that worker
    // restarted before writing the result; the adopting worker's stop found nothing to signal.
    const h = stubRun(
      { maxRunTimeSeconds: 0.05, stopGraceSeconds: 1 },
      {
        exitCode: 143,
        holds: ['wait'],
        capabilities: { adopt: true },
        adoption: { running: false, replayed: true, image: null },
      },
      { adopt: { containerId: 'left-behind', fromWorker: 'worker-0' } },
    );
    const outcome = h.run();
    await h.executor.reached('stop');
    h.executor.release('wait');
    const { result, interruptedBy } = await outcome;
    expect(interruptedBy).toBeNull();
    expect(result).toMatchObject({ state: 'Cancelled', reason: 'timeout', exitCode: 143 });
  });

  it('a shutdown that finds an adopted container already exited keeps its exit code: nothing is put back', async () => {
    const h = stubRun(
      { stopGraceSeconds: 1 },
      {
        exitCode: 3,
        holds: ['wait'],
        capabilities: { adopt: true },
        adoption: { running: false, replayed: true, image: null },
      },
      { adopt: { containerId: 'left-behind', fromWorker: 'worker-0' } },
    );
    const outcome = h.run();
    await h.executor.reached('wait');
    h.stop.abort('shutdown');
    await h.executor.reached('stop');
    h.executor.release('wait');
    const { result, interruptedBy } = await outcome;
    expect(interruptedBy).toBeNull();
    expect(result).toMatchObject({ state: 'Complete', reason: 'exited', exitCode: 3 });
  });

  it('a shutdown stops with the grace and says the run was interrupted', async () => {
    const h = stubRun({ stopGraceSeconds: 1 }, { runsUntilExited: true });
    const outcome = h.run();
    await h.executor.reached('wait');
    h.stop.abort('shutdown');
    const { interruptedBy, release } = await outcome;
    expect(interruptedBy).toBe('shutdown');
    expect(h.executor.stopOptions).toEqual([{ graceMs: 1000 }]);
    await release();
    expect(h.executor.count('close')).toBe(1);
  });

  it('a detach lets go of a running container: executor.detach(), and release removes nothing', async () => {
    const h = stubRun({}, { runsUntilExited: true, capabilities: { adopt: true } });
    const outcome = h.run();
    await h.executor.reached('wait');
    h.stop.abort('detach');
    const { interruptedBy, release } = await outcome;
    expect(interruptedBy).toBe('detach');
    expect(h.executor.count('detach')).toBe(1);
    await release();
    expect(h.executor.calls).not.toContain('stop');
    expect(h.executor.calls).not.toContain('close');
  });

  it('a detach before the container started removes it as usual', async () => {
    const h = stubRun({}, { holds: ['create'] });
    const outcome = h.run();
    await h.executor.reached('create');
    h.stop.abort('detach');
    h.executor.release('create');
    const { interruptedBy, release } = await outcome;
    expect(interruptedBy).toBe('detach');
    expect(h.executor.calls).not.toContain('detach');
    expect(h.executor.calls).not.toContain('start');
    await release();
    expect(h.executor.count('close')).toBe(1);
  });
});
