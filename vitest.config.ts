import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // e2e files start daemons and sinks on fixed loopback addresses; two cores run two files at once.
    maxWorkers: 2,
  },
});
