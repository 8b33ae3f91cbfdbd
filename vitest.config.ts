import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Fails a test file that leaves a server, socket, child process or timer behind.
    setupFiles: ['tests/helpers/open-handles.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // e2e files start daemons and sinks on fixed loopback addresses; two cores run two files at once.
    maxWorkers: 2,
  },
});
