import { describe, expect, it } from 'vitest';
import type { JobProgress } from '../../src/jobs/progress.js';
import { type WaitingFacts, whyWaiting } from '../../src/jobs/waiting.js';
import { listWorkersFrom, type WorkerPresence } from '../../src/jobs/workers.js';

const NOW = Date.parse('2026-12-02T12:00:00.000Z');
const iso = (ms: number): string => new Date(ms).toISOString();

function worker(id: string, capacity: number, running: string[], seenAgoMs = 1_000): WorkerPresence {
  return {
    id,
    host: 'h',
    pid: 1,
    capacity,
    runtime: 'docker',
    engine: 'e1',
    running,
    startedAt: iso(NOW - 60_000),
    seenAt: iso(NOW - seenAgoMs),
  };
}

function facts(extra: Partial<WaitingFacts> = {}): WaitingFacts {
  return {
    now: NOW,
    state: 'waiting',
    paused: false,
    enqueuedAt: NOW - 10_000,
    delayMs: 0,
    attemptsMade: 0,
    ahead: 0,
    workers: [worker('w1', 2, [])],
    newestSeenAt: iso(NOW - 1_000),
    staleMs: 30_000,
    progress: null,
    ...extra,
  };
}

function progress(phase: JobProgress['phase'], extra: Partial<JobProgress> = {}): JobProgress {
  const at = iso(NOW - 2_000);
  return { phase, at, history: [{ phase, at }], attempt: 1, worker: 'w1', ...extra };
}

describe('whyWaiting: queued jobs', () => {
  it("says workers-unavailable, with each one's reason, when no live worker takes jobs (its engine away)", () => {
    const away = { ...worker('w1', 2, []), notTaking: 'the docker engine has not answered for 31 s' };
    const w = whyWaiting(facts({ ahead: 2, workers: [away] }));
    expect(w).toMatchObject({
      reason: 'workers-unavailable',
      message:
        'queued behind 2 jobs; the one live worker takes no jobs now (w1 on h: the docker engine has not answered for 31 s)',
      workers: { seen: 1, busySlots: 0, slots: 0 },
    });
  });

  it('counts only the slots of workers that take jobs: one away, the other busy, is workers-busy', () => {
    const away = { ...worker('w1', 4, []), notTaking: 'worker is paused' };
    const w = whyWaiting(facts({ workers: [away, worker('w2', 1, ['x'])] }));
    expect(w).toMatchObject({ reason: 'workers-busy', workers: { seen: 2, busySlots: 1, slots: 1 } });
  });

  it('names three resting workers and counts the rest', () => {
    const rest = ['a', 'b', 'c', 'd', 'e'].map((id) => ({
      ...worker(id, 1, []),
      notTaking: 'worker is paused',
    }));
    expect(whyWaiting(facts({ workers: rest }))?.message).toBe(
      'next in line; none of the 5 live workers takes jobs now (a on h: worker is paused; b on h: worker is paused; c on h: worker is paused; and 2 more workers)',
    );
  });

  it('says queued behind N jobs when a worker has a free slot', () => {
    const w = whyWaiting(facts({ ahead: 12, workers: [worker('a', 4, ['x']), worker('b', 4, ['y', 'z'])] }));
    expect(w).toEqual({
      reason: 'queued',
      message: 'queued behind 12 jobs; 2 workers, 3 of 8 slots busy',
      since: iso(NOW - 10_000),
      ahead: 12,
      workers: { seen: 2, busySlots: 3, slots: 8 },
    });
  });

  it('says next in line, in the singular where it is one', () => {
    expect(whyWaiting(facts({ ahead: 0 }))?.message).toBe('next in line; 1 worker, 0 of 2 slots busy');
    expect(whyWaiting(facts({ ahead: 1 }))?.message).toBe('queued behind 1 job; 1 worker, 0 of 2 slots busy');
  });

  it('says workers-busy when every slot of every live worker is taken', () => {
    const w = whyWaiting(
      facts({
        ahead: 12,
        workers: [
          worker('a', 4, ['1', '2', '3', '4']),
          worker('b', 8, ['5', '6', '7', '8', '9', '10', '11', '12']),
        ],
      }),
    );
    expect(w?.reason).toBe('workers-busy');
    expect(w?.message).toBe('queued behind 12 jobs; 2 workers, all 12 slots busy');
    expect(w?.workers).toEqual({ seen: 2, busySlots: 12, slots: 12 });
  });

  it('counts a worker reporting more running jobs than slots as full, not as more than full', () => {
    const w = whyWaiting(facts({ workers: [worker('a', 1, ['1', '2']), worker('b', 1, [])] }));
    expect(w?.reason).toBe('queued');
    expect(w?.workers).toEqual({ seen: 2, busySlots: 1, slots: 2 });
  });

  it('words one busy worker of capacity 1 as its one slot', () => {
    const w = whyWaiting(facts({ ahead: 0, workers: [worker('a', 1, ['1'])] }));
    expect(w).toMatchObject({
      reason: 'workers-busy',
      ahead: 0,
      message: 'next in line; 1 worker, its one slot busy',
    });
  });

  it('treats a prioritized job like a waiting one, with the place the reader computed', () => {
    const w = whyWaiting(facts({ state: 'prioritized', ahead: 5, workers: [worker('a', 1, ['1'])] }));
    expect(w).toMatchObject({ reason: 'workers-busy', ahead: 5 });
  });

  it('says no-worker when no worker was ever seen on the queue', () => {
    const w = whyWaiting(facts({ ahead: 3, workers: [], newestSeenAt: undefined }));
    expect(w).toEqual({
      reason: 'no-worker',
      message:
        'queued behind 3 jobs; no worker on this queue (none seen for 30 s): start one (stevedore worker)',
      since: iso(NOW - 10_000),
      ahead: 3,
      workers: { seen: 0, busySlots: 0, slots: 0 },
    });
  });

  it('says when the last worker was seen when all of them are stale', () => {
    const w = whyWaiting(facts({ workers: [], newestSeenAt: iso(NOW - 5 * 60_000) }));
    expect(w?.reason).toBe('no-worker');
    expect(w?.message).toBe(
      `next in line; no worker on this queue (the last one was seen 5 min ago, at ${iso(NOW - 5 * 60_000)}): start one (stevedore worker)`,
    );
  });

  it('says the queue is paused before anything about workers', () => {
    const w = whyWaiting(facts({ paused: true, ahead: 2, workers: [] }));
    expect(w?.reason).toBe('queued');
    expect(w?.message).toBe(
      'queued behind 2 jobs; the queue is paused (Queue.resume() lets workers take jobs)',
    );
  });

  it('dates a job put back by a shutdown or stall from its last progress, not its enqueue time', () => {
    const w = whyWaiting(facts({ progress: progress('running') }));
    expect(w?.since).toBe(iso(NOW - 2_000));
  });

  it('dates a once-delayed job that became ready from when its delay ended', () => {
    const w = whyWaiting(facts({ enqueuedAt: NOW - 10_000, delayMs: 4_000 }));
    expect(w?.since).toBe(iso(NOW - 6_000));
  });
});

describe('whyWaiting: delayed and backoff', () => {
  it('says delayed until its ready time, from the delayed set', () => {
    const readyAt = NOW + 42_000;
    const w = whyWaiting(facts({ state: 'delayed', delayMs: 52_000, readyAt, ahead: undefined }));
    expect(w).toEqual({
      reason: 'delayed',
      message: `delayed until ${iso(readyAt)} (in 42 s)`,
      since: iso(NOW - 10_000),
      until: iso(readyAt),
      workers: { seen: 1, busySlots: 0, slots: 2 },
    });
  });

  it('falls back to enqueue time plus delay when the set has no score', () => {
    const w = whyWaiting(facts({ state: 'delayed', delayMs: 3 * 3_600_000 }));
    expect(w?.until).toBe(iso(NOW - 10_000 + 3 * 3_600_000));
    expect(w?.message).toContain('(in 3 h)');
  });

  it('says due now for a delay that has passed, and that no worker would take it', () => {
    const w = whyWaiting(facts({ state: 'delayed', readyAt: NOW - 1, workers: [], newestSeenAt: undefined }));
    expect(w?.message).toBe(
      `delayed until ${iso(NOW - 1)} (due now); no worker on this queue (none seen for 30 s): start one (stevedore worker)`,
    );
  });

  it('says backoff, with until and the last error, for a delayed job that has failed before', () => {
    const readyAt = NOW + 4_000;
    const w = whyWaiting(
      facts({
        state: 'delayed',
        readyAt,
        attemptsMade: 1,
        failedReason: 'creating: connect ECONNREFUSED /var/run/docker.sock\n    at stack line',
        progress: progress('done'),
      }),
    );
    expect(w).toEqual({
      reason: 'backoff',
      message: `backing off after run 1 failed: creating: connect ECONNREFUSED /var/run/docker.sock; run 2 at ${iso(readyAt)} (in 4 s)`,
      since: iso(NOW - 2_000),
      until: iso(readyAt),
      workers: { seen: 1, busySlots: 0, slots: 2 },
      lastError: 'creating: connect ECONNREFUSED /var/run/docker.sock',
    });
  });

  it('keeps a long error to one short line and copes with none at all', () => {
    const long = whyWaiting(
      facts({ state: 'delayed', readyAt: NOW, attemptsMade: 2, failedReason: 'x'.repeat(1000) }),
    );
    expect(long?.lastError).toHaveLength(300);
    const none = whyWaiting(facts({ state: 'delayed', readyAt: NOW, attemptsMade: 2 }));
    expect(none?.lastError).toBeUndefined();
    expect(none?.message).toBe(`backing off after run 2 failed; run 3 at ${iso(NOW)} (due now)`);
  });

  it("counts runs as the history does, not BullMQ's attempts option (the retry rules decide reruns)", () => {
    // Five runs ended under retry.limit 5; BullMQ's stored `attempts` (3) counts nothing here.
    const w = whyWaiting(
      facts({ state: 'delayed', readyAt: NOW, attemptsMade: 5, run: 6, failedReason: 'exit code 75' }),
    );
    expect(w?.message).toBe(`backing off after run 5 failed: exit code 75; run 6 at ${iso(NOW)} (due now)`);
  });
});

describe('whyWaiting: taken jobs', () => {
  it('says pulling with the bytes and layers while loading-image pulls', () => {
    const pull = {
      image: 'registry.local/app:1',
      layersDone: 2,
      layers: 5,
      bytes: 12_345_678,
      totalBytes: 40_000_000,
    };
    const w = whyWaiting(facts({ state: 'active', progress: progress('loading-image', { pull }) }));
    expect(w).toEqual({
      reason: 'pulling',
      message: 'pulling image registry.local/app:1: 12.3 MB of 40.0 MB so far, 2 of 5 layers',
      since: iso(NOW - 2_000),
      workers: { seen: 1, busySlots: 0, slots: 2 },
      pull,
    });
  });

  it('says pulling without bytes while an image loads from a tarball or before the first bytes', () => {
    const w = whyWaiting(facts({ state: 'active', progress: progress('loading-image') }));
    expect(w).toMatchObject({ reason: 'pulling', message: 'loading the image' });
    expect(w?.pull).toBeUndefined();
  });

  it('says nothing for a job that runs, is being admitted, or has finished', () => {
    for (const phase of ['admitted', 'creating', 'starting', 'running', 'finalizing', 'stopping'] as const) {
      expect(whyWaiting(facts({ state: 'active', progress: progress(phase) }))).toBeNull();
    }
    expect(whyWaiting(facts({ state: 'active', progress: null }))).toBeNull();
    for (const state of ['completed', 'failed', 'waiting-children', 'unknown'] as const) {
      expect(whyWaiting(facts({ state }))).toBeNull();
    }
  });
});

describe('listWorkersFrom', () => {
  const hash = (...entries: WorkerPresence[]): Record<string, string> =>
    Object.fromEntries(entries.map((e) => [e.id, JSON.stringify(e)]));

  it('keeps live workers sorted by id and tells when the newest entry was seen', () => {
    const list = listWorkersFrom(
      hash(worker('b', 1, [], 2_000), worker('a', 2, [], 5_000), worker('c', 1, [], 40_000)),
      {
        now: NOW,
      },
    );
    expect(list.workers.map((w) => w.id)).toEqual(['a', 'b']);
    expect(list.newestSeenAt).toBe(iso(NOW - 2_000));
  });

  it('reports the newest stale entry when none is live, and nothing for an empty hash', () => {
    expect(listWorkersFrom(hash(worker('a', 1, [], 90_000)), { now: NOW })).toEqual({
      workers: [],
      newestSeenAt: iso(NOW - 90_000),
    });
    expect(listWorkersFrom({}, { now: NOW })).toEqual({ workers: [] });
  });

  it('takes the staleness limit as an option', () => {
    const entries = hash(worker('a', 1, [], 2_000));
    expect(listWorkersFrom(entries, { now: NOW, staleMs: 1_000 }).workers).toEqual([]);
    expect(listWorkersFrom(entries, { now: NOW, staleMs: 3_000 }).workers).toHaveLength(1);
  });

  it('skips entries it cannot read', () => {
    const list = listWorkersFrom(
      { x: 'not json', y: '{"id":"y"}', ...hash(worker('a', 1, [])) },
      { now: NOW },
    );
    expect(list.workers.map((w) => w.id)).toEqual(['a']);
  });
});
