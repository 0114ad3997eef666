import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          // A bound against hangs, not a speed check: the full suite runs unit files in parallel
          // beside the engine's work, and a test that starts a process took 5.2 s there once.
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/integration/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          // Files share one Docker engine and two cores: run them one after another so
          // timing-sensitive tests (stop grace, cancel within 2 s) are not starved.
          fileParallelism: false,
        },
      },
    ],
  },
});
