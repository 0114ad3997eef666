import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { EngineGate } from '../../src/worker/engine-gate.js';

/** A gate over an engine the test switches on and off, on a clock the test moves. */
function gateOn(outageMs = 30_000) {
  let now = 1_000_000;
  let up = true;
  const calls: string[] = [];
  const gate = new EngineGate({
    check: async () => {
      if (!up) throw new Error('connect ENOENT /var/run/docker.sock');
    },
    outageMs,
    close: async () => {
      calls.push('pause');
    },
    open: async () => {
      calls.push('resume');
    },
    changed: () => calls.push('changed'),
    logger: pino({ level: 'silent' }),
    runtime: 'docker',
    now: () => now,
  });
  return {
    gate,
    calls,
    setUp: (value: boolean) => {
      up = value;
    },
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe('the engine gate', () => {
  it('keeps taking jobs through an outage shorter than the limit', async () => {
    const g = gateOn();
    g.setUp(false);
    await g.gate.tick();
    g.advance(29_999);
    await g.gate.tick();
    g.setUp(true);
    await g.gate.tick();
    g.setUp(false);
    g.advance(20_000);
    await g.gate.tick(); // a new outage starts counting afresh
    expect(g.gate.reason).toBeNull();
    expect(g.calls).toEqual([]);
  });

  it('stops taking jobs once the engine has been away for the limit, saying why, and takes them again when it answers', async () => {
    const g = gateOn();
    g.setUp(false);
    await g.gate.tick();
    g.advance(30_000);
    await g.gate.tick();
    expect(g.gate.reason).toBe(
      'the docker engine has not answered for 30 s (STEVEDORE_ENGINE_OUTAGE_MS=30000; last: connect ENOENT /var/run/docker.sock): taking no jobs until it answers; check the engine',
    );
    expect(g.calls).toEqual(['changed', 'pause']);
    g.advance(60_000);
    await g.gate.tick(); // still away: paused once, not again
    expect(g.calls).toEqual(['changed', 'pause']);
    g.setUp(true);
    await g.gate.tick();
    expect(g.gate.reason).toBeNull();
    expect(g.calls).toEqual(['changed', 'pause', 'resume', 'changed']);
  });

  it('asks a quarter of the limit apart, at most every 5 s', () => {
    expect(gateOn(2_000).gate.intervalMs).toBe(500);
    expect(gateOn(30_000).gate.intervalMs).toBe(5_000);
  });
});
