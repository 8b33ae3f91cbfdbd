import type { Clock } from '../clock.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import { createPostgresStore } from './postgres/postgres-store.ts';
import { createSqliteStore } from './sqlite/sqlite-store.ts';
import type { Store } from './store.ts';

/** Builds the configured backend. The caller runs `migrate()` before use and `close()` last. */
export function createStore(config: Pick<Config['storage'], 'driver' | 'path' | 'url'>, deps: { logger: Logger; clock: Clock }): Store {
  switch (config.driver) {
    case 'sqlite':
      return createSqliteStore({ path: config.path, clock: deps.clock, logger: deps.logger });
    case 'postgres':
      if (!config.url) throw new Error('storage.url: required when storage.driver is postgres (or set DATABASE_URL)');
      return createPostgresStore({ url: config.url, clock: deps.clock, logger: deps.logger });
  }
}
