import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { InfrastructureError } from '../../src/jobs/errors.js';
import { RunLedger } from '../../src/worker/run/ledger.js';
import { releaseContainer } from '../../src/worker/run/release.js';
import { LogRecorder, stubRun } from '../helpers/run-harness.js';
import { StubExecutor } from '../helpers/stub-executor.js';

describe('runJob on a stub executor: errors and clean-up', () => {
  it('keeps the first error: a failed stop stays the error when wait() then fails too', async () => {
    const h = stubRun({}, { runsUntilExited: true, failures: { stop: new Error('stop: engine said no') } });
    const outcome = h.run();
    await h.executor.reached('wait');
    h.stop.abort('cancelled');
    await h.logs.logged('stop failed');
    h.executor.crash(new Error('wait: connection reset'));
    const { result } = await outcome;
    expect(result.error).toEqual({ phase: 'stopping', message: 'stop: engine said no' });
    // The later error is logged, not lost.
    const later = await h.logs.logged('run failed');
    expect(later.err?.message).toBe('wait: connection reset');
  });

  it('never calls close() during a run; release() calls it exactly once', async () => {
    for (const script of [{}, { exitCode: 2 }, { failures: { start: new Error('start broke') } }]) {
      const h = stubRun({}, script);
      const { release } = await h.run();
      expect(h.executor.count('close')).toBe(0);
      await release();
      expect(h.executor.count('close')).toBe(1);
    }
  });

  it('release() tries again while the engine is away, and gives up on other errors at once', async () => {
    const log = pino({ level: 'warn' }, new LogRecorder());
    const pauses: number[] = [];
    const pause = async (ms: number): Promise<void> => {
      pauses.push(ms);
    };
    const away = new StubExecutor({ failures: { close: new InfrastructureError('closing', 'engine away') } });
    await releaseContainer(away, log, pause);
    expect(away.count('close')).toBe(6);
    expect(pauses).toEqual([1000, 2000, 3000, 4000, 5000]);
    const refused = new StubExecutor({ failures: { close: new Error('closing: permission denied') } });
    await releaseContainer(refused, log, pause);
    expect(refused.count('close')).toBe(1);
  });
});

describe('RunLedger', () => {
  it('keeps the first error and its phase; later ones never replace it', () => {
    const state = new RunLedger(Date.now(), pino({ level: 'silent' }));
    state.enter('loading-image');
    const first = new Error('first');
    expect(state.keepError(first)).toBe(first);
    state.enter('finalizing');
    state.keepError(new Error('second'));
    state.keepError(new InfrastructureError('closing', 'third'));
    expect(state.firstError).toBe(first);
    expect(state.errorPhase).toBe('loading-image');
  });

  it("takes a PhaseError's own phase, and makes an Error of anything thrown", () => {
    const state = new RunLedger(Date.now(), pino({ level: 'silent' }));
    state.enter('running');
    state.keepError(new InfrastructureError('creating', 'engine away'));
    expect(state.errorPhase).toBe('creating');
    const other = new RunLedger(Date.now(), pino({ level: 'silent' }));
    expect(other.keepError('a string').message).toBe('a string');
    expect(other.errorPhase).toBe('admitted');
  });
});
