import { expect, it } from 'vitest';
import { chaos, summaryTable } from '../chaos/chaos.js';
import { TEST_IMAGE, testImageTarball } from '../helpers/docker.js';

it('chaos, short form: workers SIGKILLed, Redis restarted; every job runs once and reports exactly', async () => {
  const summary = await chaos({
    jobs: 8,
    workers: 2,
    lines: 30,
    killEveryMs: 2_000,
    killForMs: 45_000,
    timeLimitMs: 90_000,
    image: TEST_IMAGE,
    imageTarball: testImageTarball(),
    seed: 42,
  });
  const table = summaryTable(summary);
  expect(summary.wrong, table).toEqual([]);
  expect(summary.completed, table).toBe(8);
  expect(summary.duplicates, table).toBe(0);
  expect(summary.leaks, table).toBe(0);
  expect(summary.kills, table).toBeGreaterThanOrEqual(2);
  expect(summary.redisRestarts, table).toBe(1);
}, 120_000);
