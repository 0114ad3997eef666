import { describe, expect, it } from 'vitest';
import { type PullMessage, PullTracker } from '../../src/executors/docker/pull-progress.js';

const IMAGE = '127.0.0.1:5000/team/app:v1';
const DIGEST = `sha256:${'c0ffee00'.repeat(8)}`;
const A = '8a49fdb3b6a5';
const B = '3f1d9c2e7b10';
const C = 'e5f6a7b8c9d0';

/** As the engine (20.10) writes them for POST /images/create, one JSON object a line. */
const line = (
  status: string,
  id?: string,
  progressDetail: PullMessage['progressDetail'] = {},
): PullMessage => (id === undefined ? { status } : { status, id, progressDetail });
const downloading = (id: string, current: number, total: number): PullMessage => ({
  status: 'Downloading',
  id,
  progressDetail: { current, total },
});

describe('PullTracker: a pull as the engine reports it', () => {
  it('follows a 2-layer pull step by step; feed() is true exactly when the pull moved', () => {
    const tracker = new PullTracker(IMAGE);
    const at = () => tracker.progress;
    const steps: [PullMessage, boolean, Partial<ReturnType<typeof at>>][] = [
      [line('Pulling from team/app', 'v1'), false, { layers: 0 }],
      [line('Pulling fs layer', A), false, { layers: 1, layersDone: 0, bytes: 0, totalBytes: 0 }],
      [line('Pulling fs layer', B), false, { layers: 2 }],
      [line('Waiting', B), false, { layers: 2, bytes: 0 }],
      [downloading(A, 1_000, 3_000), true, { bytes: 1_000, totalBytes: 3_000 }],
      // The same line again (the engine repeats a line when the bar did not move): no progress.
      [downloading(A, 1_000, 3_000), false, { bytes: 1_000 }],
      [downloading(A, 2_500, 3_000), true, { bytes: 2_500 }],
      [downloading(B, 400, 2_000), true, { bytes: 2_900, totalBytes: 5_000 }],
      [line('Verifying Checksum', A), true, { bytes: 3_400, totalBytes: 5_000 }],
      [line('Download complete', A), false, { bytes: 3_400 }],
      [
        { status: 'Extracting', id: A, progressDetail: { current: 32_768, total: 3_000 } },
        true,
        { bytes: 3_400 },
      ],
      [{ status: 'Extracting', id: A, progressDetail: { current: 32_768, total: 3_000 } }, false, {}],
      [downloading(B, 2_000, 2_000), true, { bytes: 5_000 }],
      [line('Pull complete', A), true, { layersDone: 1, layers: 2 }],
      // A layer checked and done downloading is a step, even with no byte more (small layers say only this).
      [line('Download complete', B), true, { bytes: 5_000 }],
      [{ status: 'Extracting', id: B, progressDetail: { current: 2_000, total: 2_000 } }, true, {}],
      [line('Pull complete', B), true, { layersDone: 2, layers: 2, bytes: 5_000, totalBytes: 5_000 }],
      [line(`Digest: ${DIGEST}`), true, {}],
      [line(`Status: Downloaded newer image for ${IMAGE}`), false, { layersDone: 2, bytes: 5_000 }],
    ];
    for (const [i, [message, moved, expected]] of steps.entries()) {
      expect(tracker.feed(message), `step ${i}: ${JSON.stringify(message)}`).toBe(moved);
      expect(at(), `after step ${i}: ${JSON.stringify(message)}`).toMatchObject(expected);
    }
    expect(tracker.progress).toEqual({
      image: IMAGE,
      layersDone: 2,
      layers: 2,
      bytes: 5_000,
      totalBytes: 5_000,
    });
    expect(tracker.digest).toBe(DIGEST);
    expect(tracker.error).toBeNull();
  });

  it('a layer that "Already exists" is done at once, and that is progress', () => {
    const tracker = new PullTracker(IMAGE);
    tracker.feed(line('Pulling from team/app', 'v1'));
    expect(tracker.feed(line('Already exists', C))).toBe(true);
    tracker.feed(line('Pulling fs layer', A));
    expect(tracker.progress).toMatchObject({ layers: 2, layersDone: 1, bytes: 0, totalBytes: 0 });
    tracker.feed(downloading(A, 10, 10));
    expect(tracker.feed(line('Pull complete', A))).toBe(true);
    expect(tracker.progress).toMatchObject({ layers: 2, layersDone: 2, bytes: 10, totalBytes: 10 });
  });

  it('an image already up to date: no layers, the digest, no progress from the status line', () => {
    const tracker = new PullTracker(IMAGE);
    expect(tracker.feed(line('Pulling from team/app', 'v1'))).toBe(false);
    expect(tracker.feed(line(`Digest: ${DIGEST}`))).toBe(true);
    expect(tracker.feed(line(`Status: Image is up to date for ${IMAGE}`))).toBe(false);
    expect(tracker.progress).toEqual({ image: IMAGE, layersDone: 0, layers: 0, bytes: 0, totalBytes: 0 });
    expect(tracker.digest).toBe(DIGEST);
  });

  it('a retry of a layer download, and lines it does not know, are not progress and never go backwards', () => {
    const tracker = new PullTracker(IMAGE);
    tracker.feed(line('Pulling fs layer', A));
    tracker.feed(downloading(A, 700, 1_000));
    expect(tracker.feed(line('Retrying in 5 seconds', A))).toBe(false);
    expect(tracker.feed(downloading(A, 100, 1_000))).toBe(false);
    expect(tracker.progress.bytes).toBe(700);
    // A message about an id no step introduced is no layer.
    expect(tracker.feed(line('Something new', 'zzz'))).toBe(false);
    expect(tracker.progress.layers).toBe(1);
  });

  it('an error line in the stream sets `error` (errorDetail first) and is not progress', () => {
    const tracker = new PullTracker(IMAGE);
    tracker.feed(line('Pulling fs layer', A));
    const message =
      'error pulling image configuration: read tcp 127.0.0.1:40000->127.0.0.1:5000: read: connection reset by peer';
    expect(tracker.feed({ errorDetail: { message }, error: message })).toBe(false);
    expect(tracker.error).toBe(message);
    const other = new PullTracker(IMAGE);
    other.feed({ error: 'unauthorized: authentication required' });
    expect(other.error).toBe('unauthorized: authentication required');
  });
});
