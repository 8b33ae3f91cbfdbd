import type { Clock } from '../clock.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import { createSqliteStore } from './sqlite/sqlite-store.ts';
import type { Store } from './store.ts';

/**
 * Builds the configured backend. The caller runs `migrate()` before use and `close()` last.
 * PostgreSQL's driver is loaded only for a PostgreSQL store: the embedded default does without
 * its memory.
 */
export async function createStore(config: Pick<Config['storage'], 'driver' | 'path' | 'url'>, deps: { logger: Logger; clock: Clock }): Promise<Store> {
  switch (config.driver) {
    case 'sqlite':
      return createSqliteStore({ path: config.path, clock: deps.clock, logger: deps.logger });
    case 'postgres': {
      if (!config.url) throw new Error('storage.url: required when storage.driver is postgres (or set DATABASE_URL)');
      const { createPostgresStore } = await import('./postgres/postgres-store.ts');
      return createPostgresStore({ url: config.url, clock: deps.clock, logger: deps.logger });
    }
  }
}
