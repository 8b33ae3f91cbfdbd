import { createPoolBackend } from '../../src/ippool/backend/create-pool-backend.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import { createTempDir } from '../helpers/temp-dir.ts';
import { runPoolBackendContract } from './pool-backend-contract.ts';

const logger = createLogger('silent');

// Each instance is a store of its own on the same file: two daemons' worth of connections.
runPoolBackendContract('local on SQLite', async () => {
  const dir = await createTempDir('rookery-pool-sqlite');
  const path = dir.file('rookery.db');
  return {
    sharedLimiter: false,
    async open(clock) {
      const store = createSqliteStore({ path, clock, logger });
      await store.migrate();
      return { backend: createPoolBackend({ store, clock }), close: () => store.close() };
    },
    destroy: () => dir.remove(),
  };
});
