import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import {
  listWorkersFrom,
  PRESENCE_PRUNE_MS,
  PresenceWriter,
  type WorkerPresence,
} from '../../src/jobs/workers.js';

/** The few hash commands PresenceWriter sends, kept in a Map; `gate` holds writes back until released. */
class HashRedis {
  readonly hash = new Map<string, string>();
  writes: WorkerPresence[] = [];
  gate: Promise<void> | undefined;

  multi() {
    const ops: (() => void)[] = [];
    const chain = {
      hset: (_key: string, field: string, value: string) => {
        ops.push(() => {
          this.hash.set(field, value);
          this.writes.push(JSON.parse(value) as WorkerPresence);
        });
        return chain;
      },
      pexpire: () => chain,
      exec: async () => {
        await this.gate;
        for (const op of ops) op();
        return [];
      },
    };
    return chain;
  }

  async hgetall(): Promise<Record<string, string>> {
    return Object.fromEntries(this.hash);
  }

  async hdel(_key: string, ...fields: string[]): Promise<number> {
    for (const f of fields) this.hash.delete(f);
    return fields.length;
  }
}

const address = { prefix: 'bull', queue: 'q' };
const tick = () => new Promise((r) => setImmediate(r));
const settle = async () => {
  for (let i = 0; i < 5; i++) await tick();
};

function writer(redis: HashRedis, running: () => string[], errors: Error[] = []) {
  return new PresenceWriter(redis as unknown as Redis, address, {
    id: 'w1',
    host: 'h',
    pid: 7,
    capacity: 2,
    engine: 'e1',
    runtime: 'docker',
    running,
    onError: (e) => errors.push(e),
    heartbeatMs: 60_000,
  });
}

describe('PresenceWriter', () => {
  it('writes once for many slot changes in one tick, with the running jobs of that moment', async () => {
    const redis = new HashRedis();
    let running: string[] = [];
    const w = writer(redis, () => running);
    await w.start();
    expect(redis.writes.map((e) => e.running)).toEqual([[]]);
    running = ['a', 'b'];
    for (let i = 0; i < 10; i++) w.changed();
    await settle();
    expect(redis.writes.map((e) => e.running)).toEqual([[], ['a', 'b']]);
    expect(redis.writes[1]).toMatchObject({ id: 'w1', host: 'h', pid: 7, capacity: 2, runtime: 'docker' });
    await w.stop();
  });

  it('carries why the worker takes no jobs while it takes none, read from Redis as listWorkers reads it', async () => {
    const redis = new HashRedis();
    let notTaking: string | null = null;
    const w = new PresenceWriter(redis as unknown as Redis, address, {
      id: 'w1',
      host: 'h',
      pid: 7,
      capacity: 2,
      runtime: 'docker',
      engine: 'e1',
      running: () => [],
      notTaking: () => notTaking,
      onError: () => undefined,
      heartbeatMs: 60_000,
    });
    await w.start();
    notTaking = 'the docker engine has not answered for 31 s';
    w.changed();
    await settle();
    const read = listWorkersFrom(Object.fromEntries(redis.hash), { now: Date.now() });
    expect(read.workers[0]?.notTaking).toBe('the docker engine has not answered for 31 s');
    notTaking = null;
    w.changed();
    await settle();
    expect(redis.writes.map((e) => e.notTaking)).toEqual([
      undefined,
      'the docker engine has not answered for 31 s',
      undefined,
    ]);
    await w.stop();
  });

  it('makes exactly one more write for changes during a write, carrying the newest state', async () => {
    const redis = new HashRedis();
    let running = ['a'];
    const w = writer(redis, () => running);
    await w.start();
    let release = (): void => undefined;
    redis.gate = new Promise((r) => {
      release = r;
    });
    w.changed();
    await settle(); // that write is now waiting on the gate
    running = ['a', 'b'];
    w.changed();
    await settle();
    running = ['a', 'b', 'c'];
    w.changed();
    await settle();
    release();
    redis.gate = undefined;
    await settle();
    expect(redis.writes.map((e) => e.running)).toEqual([['a'], ['a'], ['a', 'b', 'c']]);
    await w.stop();
  });

  it('deletes its own entry on stop, and prunes entries not seen for an hour on start', async () => {
    const redis = new HashRedis();
    const old = new Date(Date.now() - PRESENCE_PRUNE_MS - 1_000).toISOString();
    redis.hash.set('dead', JSON.stringify({ id: 'dead', seenAt: old }));
    redis.hash.set('recent', JSON.stringify({ id: 'recent', seenAt: new Date().toISOString() }));
    const w = writer(redis, () => []);
    await w.start();
    expect([...redis.hash.keys()].sort()).toEqual(['recent', 'w1']);
    await w.stop();
    expect([...redis.hash.keys()]).toEqual(['recent']);
    w.changed();
    await settle();
    expect([...redis.hash.keys()]).toEqual(['recent']); // nothing written after stop
  });
});
