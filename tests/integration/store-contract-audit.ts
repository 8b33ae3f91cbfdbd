import { expect, it } from 'vitest';
import type { ManualClock } from '../helpers/manual-clock.ts';
import type { AuditEntry, AuditFilters, AuditRecord, Store } from '../../src/storage/store.ts';

/**
 * The audit log (AuditLog) in the store contract: called from runStoreContract, so every
 * backend stores, lists, pages and purges real rows.
 */

const T0 = 1_700_000_000_000;
const ALL: AuditFilters = { actor: null, route: null, status: null, outcome: null, since: null, until: null, tenant: null };

function entry(overrides: Partial<AuditEntry> = {}): AuditEntry {
  return {
    at: T0,
    actor: 'ops-laptop',
    tenant: null,
    clientAddress: '192.0.2.7',
    method: 'POST',
    route: '/v1/domains/:domain/check',
    target: 'example.com',
    change: null,
    status: 200,
    outcome: 'OK',
    ...overrides,
  };
}

/** Every page of a listing, following the last item as the cursor. */
async function allPages(store: Store, filters: AuditFilters, limit: number): Promise<AuditRecord[][]> {
  const pages: AuditRecord[][] = [];
  let after: { at: number; id: number } | null = null;
  for (;;) {
    const page = await store.listAudit(filters, after, limit);
    if (page.length === 0) return pages;
    pages.push(page);
    const last = page.at(-1)!;
    after = { at: last.at, id: last.id };
  }
}

export function registerAuditContract(ctx: { store: () => Store; clock: () => ManualClock }): void {
  it('records an audit entry and reads it back whole, change included', async () => {
    const store = ctx.store();
    const change = { before: { weight: 100 }, after: { weight: 0, note: 'nul \u0000 escaped' } };
    await store.recordAudit(entry({ change, tenant: 'acme' }));
    await store.recordAudit(entry({ actor: null, method: 'GET', route: '/v1/queue', target: '/v1/queue', status: 401, outcome: 'AUTH_FAILED', at: T0 + 1 }));

    const [failed, post] = await store.listAudit(ALL, null, 10);
    expect(post).toEqual({ ...entry({ change, tenant: 'acme' }), id: post!.id });
    expect(failed).toMatchObject({ actor: null, status: 401, outcome: 'AUTH_FAILED', change: null, route: '/v1/queue' });
    expect(failed!.id).toBeGreaterThan(post!.id);
  });

  it('keeps a NUL of request text out of the row (PostgreSQL text cannot hold it)', async () => {
    const store = ctx.store();
    await store.recordAudit(entry({ target: 'exa\u0000mple.com' }));
    const [row] = await store.listAudit(ALL, null, 10);
    expect(row!.target).toBe('exa\uFFFDmple.com');
  });

  it('lists newest first, by time then id, and pages by cursor without loss or repeat', async () => {
    const store = ctx.store();
    // Two entries share each time: the id orders them.
    for (let i = 0; i < 7; i++) await store.recordAudit(entry({ at: T0 + Math.floor(i / 2) * 1000, target: `t${i}` }));
    const pages = await allPages(store, ALL, 3);
    expect(pages.map((p) => p.length)).toEqual([3, 3, 1]);
    expect(pages.flat().map((r) => r.target)).toEqual(['t6', 't5', 't4', 't3', 't2', 't1', 't0']);
  });

  it('filters by actor, route, status, outcome and time, each combined with the cursor', async () => {
    const store = ctx.store();
    await store.recordAudit(entry({ at: T0, actor: 'a', target: '1' }));
    await store.recordAudit(entry({ at: T0 + 10, actor: 'b', tenant: 'acme', target: '2', status: 404, outcome: 'NOT_FOUND' }));
    await store.recordAudit(entry({ at: T0 + 20, actor: 'a', target: '3', route: '/v1/other', method: 'DELETE' }));
    await store.recordAudit(entry({ at: T0 + 30, actor: 'a', target: '4' }));
    await store.recordAudit(entry({ at: T0 + 40, actor: null, target: '5', status: 401, outcome: 'AUTH_FAILED' }));
    const targets = async (f: Partial<AuditFilters>, limit = 1) => (await allPages(store, { ...ALL, ...f }, limit)).flat().map((r) => r.target);

    expect(await targets({ actor: 'a' })).toEqual(['4', '3', '1']);
    expect(await targets({ route: '/v1/domains/:domain/check' }, 2)).toEqual(['5', '4', '2', '1']);
    expect(await targets({ status: 200 })).toEqual(['4', '3', '1']);
    expect(await targets({ outcome: 'AUTH_FAILED' })).toEqual(['5']);
    expect(await targets({ since: T0 + 10, until: T0 + 40 })).toEqual(['4', '3', '2']);
    expect(await targets({ actor: 'a', since: T0 + 20 })).toEqual(['4', '3']);
    expect(await targets({ actor: 'nobody' })).toEqual([]);
    expect(await targets({ tenant: 'acme' })).toEqual(['2']);
    expect(await targets({ tenant: 'acme', actor: 'a' })).toEqual([]);
    // A cursor newer than `until` starts the page at `until`.
    expect((await store.listAudit({ ...ALL, until: T0 + 20 }, { at: T0 + 40, id: Number.MAX_SAFE_INTEGER }, 10)).map((r) => r.target)).toEqual(['2', '1']);
  });

  it('purges entries older than the cut-off, however many, and keeps the rest', async () => {
    const store = ctx.store();
    // More than one purge chunk (1000) of old entries.
    await Promise.all(Array.from({ length: 1203 }, (_, i) => store.recordAudit(entry({ at: T0 + (i % 3), target: `old${i}` }))));
    await store.recordAudit(entry({ at: T0 + 5000, target: 'kept' }));
    expect(await store.purgeAudit(T0 + 5000)).toBe(1203);
    expect((await store.listAudit(ALL, null, 10)).map((r) => r.target)).toEqual(['kept']);
    expect(await store.purgeAudit(T0 + 5000)).toBe(0);
  });
}
