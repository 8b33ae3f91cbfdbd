import type { Clock } from '../../clock.ts';
import type { Store } from '../../storage/store.ts';
import type { PoolState } from '../contracts.ts';
import { checkStateEntry, checkStateKey } from './pool-state-checks.ts';

/**
 * Pool state in the local store: survives a restart, shared by every daemon on a PostgreSQL
 * database. Expired entries are invisible at once; the store deletes them when purged.
 */
export class StorePoolState implements PoolState {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  async set(key: string, value: string, expiresAt: number | null): Promise<void> {
    checkStateKey(key);
    checkStateEntry(value, expiresAt);
    // Already expired: what is left to keep is nothing (and any older value must go too).
    if (expiresAt !== null && expiresAt <= this.clock.now()) return this.store.deletePoolState(key);
    await this.store.setPoolState({ key, value, expiresAt });
  }

  async get(key: string): Promise<string | null> {
    checkStateKey(key);
    return this.store.getPoolState(key, this.clock.now());
  }

  async delete(key: string): Promise<void> {
    checkStateKey(key);
    await this.store.deletePoolState(key);
  }

  async list(prefix: string, now: number): Promise<Array<{ key: string; value: string; expiresAt: number | null }>> {
    return this.store.listPoolState(prefix, now);
  }
}
