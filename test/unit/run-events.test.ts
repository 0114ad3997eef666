import { describe, expect, it } from 'vitest';
import { type WorkerEventMap, WorkerEvents } from '../../src/worker/observer.js';
import { stubRun } from '../helpers/run-harness.js';

type PhaseEnded = WorkerEventMap['phase-ended'][0];

describe('runJob tells the worker events each phase it leaves', () => {
  it('from queued to finalizing, each with its time, matching the result', async () => {
    const events = new WorkerEvents();
    const ended: PhaseEnded[] = [];
    events.on('phase-ended', (e) => ended.push(e));
    const { result } = await stubRun({}, {}, { events, enqueuedAt: Date.now() - 2_000 }).run();
    expect(ended.map((e) => e.phase)).toEqual([
      'queued',
      'admitted',
      'loading-image',
      'creating',
      'starting',
      'running',
      'finalizing',
    ]);
    expect(ended.every((e) => e.jobId === 'job-1' && e.seconds >= 0)).toBe(true);
    expect(ended[0]?.seconds).toBeGreaterThanOrEqual(2);
    expect(Object.keys(result.phases)).toEqual(ended.map((e) => e.phase));
  });
});

describe('runJob tells the worker events about pulls', () => {
  const pulled = (shared: boolean) => ({
    imageId: 'sha256:abc',
    imageDigest: null,
    source: 'registry' as const,
    pull: { durationMs: 1_500, bytes: 10, layers: 1, shared },
  });
  const pulls = async (spec: Record<string, unknown>, script: Parameters<typeof stubRun>[1]) => {
    const events = new WorkerEvents();
    const seen: WorkerEventMap['pull-done'][0][] = [];
    events.on('pull-done', (e) => seen.push(e));
    await stubRun(spec, script, { events }).run();
    return seen;
  };

  it('a pull of its own, one it waited on, a failed one', async () => {
    expect(await pulls({}, { image: pulled(false) })).toEqual([
      { jobId: 'job-1', result: 'pulled', seconds: 1.5 },
    ]);
    expect(await pulls({}, { image: pulled(true) })).toMatchObject([{ result: 'shared' }]);
    const failed = await pulls({}, { failures: { loadImage: new Error('manifest unknown') } });
    expect(failed).toMatchObject([{ result: 'failed' }]);
  });

  it('none for an image already present, a tarball load or a `never` policy', async () => {
    expect(await pulls({}, {})).toEqual([]);
    const broken = { failures: { loadImage: new Error('no such image') } };
    expect(await pulls({ imageTarball: '/images/app.tar' }, broken)).toEqual([]);
    expect(await pulls({ imagePullPolicy: 'never' }, broken)).toEqual([]);
  });
});
