import { describe, expect, it } from 'vitest';
import { probeWorker } from '../../src/worker/probe.js';

const engineUp = { checkAvailable: async () => undefined };
const redisUp = { status: 'ready' as const, ping: async () => 'PONG' as const };

describe('probeWorker', () => {
  it('is all null when Redis and the engine answer and the worker takes jobs', async () => {
    expect(await probeWorker(redisUp, engineUp, null)).toEqual({ redis: null, engine: null, jobs: null });
  });

  it('says a reconnecting Redis at once, without queueing a command', async () => {
    const redis = { status: 'reconnecting' as const, ping: () => new Promise<'PONG'>(() => undefined) };
    expect((await probeWorker(redis, engineUp, null)).redis).toBe('connection is reconnecting');
  });

  it("gives the engine's own message, and bounds one that hangs", async () => {
    const down = {
      checkAvailable: async () => Promise.reject(new Error('no Docker engine at unix:///x.sock')),
    };
    expect((await probeWorker(redisUp, down, 'worker is closing')).engine).toBe(
      'no Docker engine at unix:///x.sock',
    );
    const hung = { checkAvailable: () => new Promise<void>(() => undefined) };
    expect(await probeWorker(redisUp, hung, 'worker is closing')).toEqual({
      redis: null,
      engine: 'no answer within 800 ms',
      jobs: 'worker is closing',
    });
  });
});
