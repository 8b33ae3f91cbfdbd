import { describe } from 'vitest';
import { createPoolBackend } from '../../src/ippool/backend/create-pool-backend.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createPostgresStore } from '../../src/storage/postgres/postgres-store.ts';
import { createTestSchema } from '../helpers/postgres.ts';
import { requirePostgres } from '../helpers/services.ts';
import { runPoolBackendContract } from './pool-backend-contract.ts';

const logger = createLogger('silent');
const available = await requirePostgres();

describe.skipIf(!available)('pool backend on PostgreSQL', () => {
  // Each instance is a store with its own connection pool on one schema: another daemon.
  runPoolBackendContract('local on PostgreSQL', async () => {
    const schema = await createTestSchema('pool-backend');
    return {
      sharedLimiter: false,
      async open(clock) {
        const store = createPostgresStore({ url: schema.url, schema: schema.schema, clock, logger, poolSize: 4 });
        await store.migrate();
        return { backend: createPoolBackend({ store, clock }), close: () => store.close() };
      },
      destroy: () => schema.drop(),
    };
  });
});
