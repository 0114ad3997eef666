import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
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
