import { expect, it } from 'vitest';
import type { BlocklistState } from '../../src/storage/blocklist-states.ts';
import type { Store } from '../../src/storage/store.ts';

/**
 * The blocklist watch's states in the store contract (BlocklistStates): one row per (IP, list),
 * replaced whole by each lookup, read back the same on every backend and by a second store on
 * the same database (another node, or this one after a restart).
 */

const T0 = 1_700_000_000_000;

function state(overrides: Partial<BlocklistState> = {}): BlocklistState {
  return { ip: '192.0.2.10', list: 'spamhaus-zen', listed: false, codes: [], reason: null, firstListedAt: null, lastCheckedAt: T0, lastError: null, ...overrides };
}

export function registerBlocklistContract(ctx: { store: () => Store; open: () => Promise<Store> }): void {
  it('keeps one blocklist state per (IP, list), replaced whole, and lists them by IP then list', async () => {
    const store = ctx.store();
    expect(await store.listBlocklistStates(null)).toEqual([]);
    const listed = state({ listed: true, codes: ['127.0.0.2', '127.0.0.4'], reason: 'Listed \u0000by SBL, see https://check.spamhaus.org/', firstListedAt: T0 });
    await store.saveBlocklistState(listed);
    await store.saveBlocklistState(state({ list: 'barracuda', lastError: 'ETIMEOUT' }));
    await store.saveBlocklistState(state({ ip: '2001:db8::7', lastCheckedAt: null }));
    expect(await store.listBlocklistStates(null)).toEqual([
      state({ list: 'barracuda', lastError: 'ETIMEOUT' }),
      { ...listed, reason: 'Listed \uFFFDby SBL, see https://check.spamhaus.org/' },
      state({ ip: '2001:db8::7', lastCheckedAt: null }),
    ]);

    // Delisted: every field replaced, none kept from the listing.
    await store.saveBlocklistState(state({ lastCheckedAt: T0 + 60_000 }));
    expect(await store.listBlocklistStates(['192.0.2.10'])).toEqual([state({ list: 'barracuda', lastError: 'ETIMEOUT' }), state({ lastCheckedAt: T0 + 60_000 })]);
    expect(await store.listBlocklistStates(['2001:db8::7', '198.51.100.1'])).toEqual([state({ ip: '2001:db8::7', lastCheckedAt: null })]);
    expect(await store.listBlocklistStates([])).toEqual([]);
  });

  it('shares blocklist states with another store on the same database', async () => {
    const other = await ctx.open();
    await other.saveBlocklistState(state({ listed: true, codes: ['127.0.0.3'], firstListedAt: T0 - 1000 }));
    expect(await ctx.store().listBlocklistStates(['192.0.2.10'])).toEqual([state({ listed: true, codes: ['127.0.0.3'], firstListedAt: T0 - 1000 })]);
  });
}
