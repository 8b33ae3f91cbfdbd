import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/clock.ts';
import type { PoolBackendHandle } from '../../src/ippool/backend/create-pool-backend.ts';
import { parseStateKey, stateKeys } from '../../src/ippool/pool-keys.ts';
import { ALL_PROVIDERS, providerScope, siteScope } from '../../src/ippool/restriction-scope.ts';
import { manualClock, type ManualClock } from '../helpers/manual-clock.ts';

/**
 * The one behaviour contract of the pool backend (usage counters, GCRA rate limiter, pool
 * state), run against the local backend on SQLite and on PostgreSQL and against Redis. Each
 * test gets fresh data (a new file, schema or key prefix) and a clock that moves only when told.
 */

export interface OpenedBackend {
  backend: PoolBackendHandle;
  /** Closes this instance's connections (a daemon stopping); the data stays. */
  close(): Promise<void>;
}

export interface PoolBackendFixture {
  /** Opens another instance on the same data: another daemon sharing the database or Redis. */
  open(clock: Clock): Promise<OpenedBackend>;
  /** True when instances share rate limiter buckets (Redis); false when each keeps its own. */
  sharedLimiter: boolean;
  /** Deletes the data. Called after every opened instance is closed. */
  destroy(): Promise<void>;
}

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** One take of a table-driven GCRA sequence: at T0 + t, take `cost`, expect this decision. */
interface TakeStep {
  t: number;
  cost: number;
  allowed: boolean;
  retryAfterMs: number;
}

/**
 * Decisions every limiter must take, worked out by hand from the GCRA definition. The same
 * tables run against the in-process and the Redis limiter, so both decide alike.
 */
export const GCRA_TABLES: Array<{ name: string; limit: { ratePerSecond: number; burst: number }; steps: TakeStep[] }> = [
  {
    name: '10/s, burst 5',
    limit: { ratePerSecond: 10, burst: 5 },
    steps: [
      { t: 0, cost: 1, allowed: true, retryAfterMs: 0 },
      { t: 0, cost: 1, allowed: true, retryAfterMs: 0 },
      { t: 0, cost: 2, allowed: true, retryAfterMs: 0 },
      { t: 0, cost: 1, allowed: true, retryAfterMs: 0 },
      // The bucket is empty; the next token comes one interval (100 ms) later.
      { t: 0, cost: 1, allowed: false, retryAfterMs: 100 },
      { t: 50, cost: 1, allowed: false, retryAfterMs: 50 },
      { t: 100, cost: 1, allowed: true, retryAfterMs: 0 },
      { t: 100, cost: 1, allowed: false, retryAfterMs: 100 },
      { t: 150, cost: 2, allowed: false, retryAfterMs: 150 },
      { t: 300, cost: 2, allowed: true, retryAfterMs: 0 },
      // Idle long enough to refill completely: a whole burst at once, and not more.
      { t: 1000, cost: 5, allowed: true, retryAfterMs: 0 },
      { t: 1000, cost: 1, allowed: false, retryAfterMs: 100 },
      { t: 10_000, cost: 1, allowed: true, retryAfterMs: 0 },
    ],
  },
  {
    // An interval of 333.33... ms: fractional arithmetic must round alike in both limiters.
    name: '3/s, burst 2',
    limit: { ratePerSecond: 3, burst: 2 },
    steps: [
      { t: 0, cost: 1, allowed: true, retryAfterMs: 0 },
      { t: 0, cost: 1, allowed: true, retryAfterMs: 0 },
      { t: 0, cost: 1, allowed: false, retryAfterMs: 334 },
      { t: 333, cost: 1, allowed: false, retryAfterMs: 1 },
      { t: 334, cost: 1, allowed: true, retryAfterMs: 0 },
      { t: 334, cost: 1, allowed: false, retryAfterMs: 333 },
      { t: 667, cost: 2, allowed: false, retryAfterMs: 333 },
      { t: 1001, cost: 2, allowed: true, retryAfterMs: 0 },
    ],
  },
  {
    // A throttle to 36 per hour: one token every 100 s.
    name: '36/h, burst 1',
    limit: { ratePerSecond: 0.01, burst: 1 },
    steps: [
      { t: 0, cost: 1, allowed: true, retryAfterMs: 0 },
      { t: 1, cost: 1, allowed: false, retryAfterMs: 99_999 },
      { t: 100_000, cost: 1, allowed: true, retryAfterMs: 0 },
      { t: 150_000, cost: 1, allowed: false, retryAfterMs: 50_000 },
    ],
  },
];

export function runPoolBackendContract(name: string, makeFixture: () => Promise<PoolBackendFixture>): void {
  describe(`Pool backend contract: ${name}`, () => {
    let fixture: PoolBackendFixture;
    let clock: ManualClock;
    let opened: OpenedBackend[];
    let backend: PoolBackendHandle;

    const open = async (): Promise<OpenedBackend> => {
      const instance = await fixture.open(clock);
      opened.push(instance);
      return instance;
    };

    beforeEach(async () => {
      clock = manualClock(T0);
      opened = [];
      fixture = await makeFixture();
      backend = (await open()).backend;
    });

    afterEach(async () => {
      await Promise.all(opened.map((o) => o.close()));
      await fixture.destroy();
    });

    describe('usage counters', () => {
      it('reserves up to the limit exactly and refuses beyond it, taking nothing', async () => {
        const { counters } = backend;
        expect(await counters.reserve('ip-a', T0, DAY, 4, 10)).toEqual({ ok: true, total: 4 });
        expect(await counters.reserve('ip-a', T0, DAY, 6, 10)).toEqual({ ok: true, total: 10 });
        expect(await counters.reserve('ip-a', T0, DAY, 1, 10)).toEqual({ ok: false, total: 10 });
        expect(await counters.reserve('ip-a', T0, DAY, 0, 10)).toEqual({ ok: true, total: 10 });
        // A higher limit (the next day of a plan) lets the same counter grow again.
        expect(await counters.reserve('ip-a', T0, DAY, 5, 20)).toEqual({ ok: true, total: 15 });
        expect(await counters.reserve('ip-a', T0, DAY, 6, 20)).toEqual({ ok: false, total: 15 });
        expect(await counters.get([{ key: 'ip-a', windowStart: T0 }])).toEqual([15]);
      });

      it('refuses a first reservation above the limit and stores nothing', async () => {
        const { counters } = backend;
        expect(await counters.reserve('ip-a', T0, DAY, 11, 10)).toEqual({ ok: false, total: 0 });
        expect(await counters.reserve('ip-b', T0, DAY, 1, 0)).toEqual({ ok: false, total: 0 });
        expect(await counters.get([{ key: 'ip-a', windowStart: T0 }, { key: 'ip-b', windowStart: T0 }])).toEqual([0, 0]);
        expect(await counters.reserve('ip-a', T0, DAY, 10, 10)).toEqual({ ok: true, total: 10 });
      });

      it('keeps keys and windows independent', async () => {
        const { counters } = backend;
        await counters.reserve('ip-a|gmail', T0, HOUR, 3, 3);
        expect(await counters.reserve('ip-a|gmail', T0 + HOUR, HOUR, 3, 3)).toEqual({ ok: true, total: 3 });
        expect(await counters.reserve('ip-a|yahoo', T0, HOUR, 2, 3)).toEqual({ ok: true, total: 2 });
        expect(await counters.reserve('ip-b|gmail', T0, HOUR, 1, 3)).toEqual({ ok: true, total: 1 });
        expect(await counters.reserve('ip-a|gmail', T0, HOUR, 1, 3)).toEqual({ ok: false, total: 3 });
        expect(
          await counters.get([
            { key: 'ip-a|gmail', windowStart: T0 },
            { key: 'ip-a|gmail', windowStart: T0 + HOUR },
            { key: 'ip-a|yahoo', windowStart: T0 },
            { key: 'ip-b|gmail', windowStart: T0 },
          ]),
        ).toEqual([3, 3, 2, 1]);
      });

      it('adds without a limit, and reservations count what was added', async () => {
        const { counters } = backend;
        expect(await counters.add('ip-a', T0, DAY, 7)).toBe(7);
        expect(await counters.add('ip-a', T0, DAY, 5)).toBe(12);
        expect(await counters.reserve('ip-a', T0, DAY, 1, 12)).toEqual({ ok: false, total: 12 });
        expect(await counters.reserve('ip-a', T0, DAY, 1, 13)).toEqual({ ok: true, total: 13 });
        expect(await counters.add('ip-a', T0, DAY, 0)).toBe(13);
      });

      it('reads 0 for windows never written, in the order asked', async () => {
        const { counters } = backend;
        expect(await counters.get([])).toEqual([]);
        await counters.add('ip-a', T0, DAY, 2);
        expect(
          await counters.get([
            { key: 'nobody', windowStart: T0 },
            { key: 'ip-a', windowStart: T0 },
            { key: 'ip-a', windowStart: T0 + DAY },
            { key: 'ip-a', windowStart: T0 },
          ]),
        ).toEqual([0, 2, 0, 2]);
      });

      it('forgets a window one window after it ends, and starts it again from 0', async () => {
        const { counters } = backend;
        await counters.reserve('ip-a', T0, HOUR, 5, 5);
        // Through its own hour and the next one, the window's usage stays readable.
        clock.set(T0 + 2 * HOUR - 1);
        expect(await counters.get([{ key: 'ip-a', windowStart: T0 }])).toEqual([5]);
        expect(await counters.reserve('ip-a', T0, HOUR, 1, 5)).toEqual({ ok: false, total: 5 });
        clock.set(T0 + 2 * HOUR);
        expect(await counters.get([{ key: 'ip-a', windowStart: T0 }])).toEqual([0]);
        // An expired counter is never added to: the limit applies to a fresh count.
        expect(await counters.reserve('ip-a', T0, HOUR, 3, 5)).toEqual({ ok: true, total: 3 });
        expect(await counters.add('ip-a', T0, HOUR, 1)).toBe(4);
      });

      it('keeps a window written late for at least one window length after the write', async () => {
        const { counters } = backend;
        // Usage counted after the fact, well after its window ended.
        clock.set(T0 + 5 * HOUR);
        expect(await counters.add('ip-a', T0, HOUR, 2)).toBe(2);
        clock.set(T0 + 6 * HOUR - 1);
        expect(await counters.get([{ key: 'ip-a', windowStart: T0 }])).toEqual([2]);
        clock.set(T0 + 6 * HOUR);
        expect(await counters.get([{ key: 'ip-a', windowStart: T0 }])).toEqual([0]);
      });

      it('purges expired counters and state without touching live ones', async () => {
        await backend.counters.add('old', T0, HOUR, 1);
        await backend.counters.add('live', T0 + 10 * HOUR, HOUR, 1);
        await backend.state.set('old', 'x', T0 + 1000);
        await backend.state.set('live', 'y', null);
        clock.set(T0 + 3 * HOUR);
        // The local store deletes the two expired rows; Redis expires its keys itself.
        expect(await backend.purgeExpired()).toBe(backend.kind === 'local' ? 2 : 0);
        expect(await backend.purgeExpired()).toBe(0);
        expect(await backend.counters.get([{ key: 'old', windowStart: T0 }, { key: 'live', windowStart: T0 + 10 * HOUR }])).toEqual([0, 1]);
        expect(await backend.state.list('', clock.now())).toEqual([{ key: 'live', value: 'y', expiresAt: null }]);
      });

      it('keeps counters across a restart', async () => {
        await backend.counters.reserve('ip-a', T0, DAY, 8, 10);
        await opened[0]!.close();
        const restarted = (await open()).backend;
        expect(await restarted.counters.reserve('ip-a', T0, DAY, 3, 10)).toEqual({ ok: false, total: 8 });
        expect(await restarted.counters.reserve('ip-a', T0, DAY, 2, 10)).toEqual({ ok: true, total: 10 });
      });

      it('rejects malformed arguments', async () => {
        const { counters } = backend;
        await expect(counters.reserve('ip-a', T0, DAY, -1, 10)).rejects.toThrow(RangeError);
        await expect(counters.reserve('ip-a', T0, DAY, 1.5, 10)).rejects.toThrow(RangeError);
        await expect(counters.reserve('ip-a', T0, DAY, 1, -1)).rejects.toThrow(RangeError);
        await expect(counters.reserve('ip-a', T0, 0, 1, 10)).rejects.toThrow(RangeError);
        await expect(counters.add('ip-a', Number.NaN, DAY, 1)).rejects.toThrow(RangeError);
        await expect(counters.add('', T0, DAY, 1)).rejects.toThrow(TypeError);
        expect(await counters.get([{ key: 'ip-a', windowStart: T0 }])).toEqual([0]);
      });

      it('never lets two instances together pass the limit under many parallel reservations', async () => {
        const other = (await open()).backend;
        const limit = 50;
        const attempts = Array.from({ length: 240 }, (_, i) => {
          const instance = i % 2 === 0 ? backend : other;
          return instance.counters.reserve('ip-a|gmail', T0, DAY, 1, limit);
        });
        const results = await Promise.all(attempts);
        expect(results.filter((r) => r.ok)).toHaveLength(limit);
        expect(results.every((r) => r.total <= limit)).toBe(true);
        // Each accepted reservation saw a distinct total: no two were handed the same unit.
        expect(new Set(results.filter((r) => r.ok).map((r) => r.total)).size).toBe(limit);
        expect(await other.counters.get([{ key: 'ip-a|gmail', windowStart: T0 }])).toEqual([limit]);
      });

      it('counts exactly what was granted when parallel reservations differ in size', async () => {
        const other = (await open()).backend;
        const limit = 101;
        const amounts = Array.from({ length: 160 }, (_, i) => 1 + (i % 4));
        const results = await Promise.all(
          amounts.map((amount, i) => (i % 2 === 0 ? backend : other).counters.reserve('ip-b|yahoo', T0, DAY, amount, limit)),
        );
        const granted = amounts.reduce((sum, amount, i) => sum + (results[i]!.ok ? amount : 0), 0);
        const [total] = await backend.counters.get([{ key: 'ip-b|yahoo', windowStart: T0 }]);
        expect(total).toBe(granted);
        expect(total).toBeLessThanOrEqual(limit);
        // Refusals only happen near the limit: what is left is smaller than the largest request.
        expect(limit - total!).toBeLessThan(4);
      });
    });

    describe('rate limiter (GCRA)', () => {
      const limit = { ratePerSecond: 10, burst: 5 };

      it('allows the burst at once, then one take per interval, with the right wait', async () => {
        const { limiter } = backend;
        const burst = await Promise.all(Array.from({ length: 5 }, () => limiter.take('ip-a>gmail', limit, T0)));
        expect(burst.every((d) => d.allowed && d.retryAfterMs === 0)).toBe(true);
        expect(await limiter.take('ip-a>gmail', limit, T0)).toEqual({ allowed: false, retryAfterMs: 100 });
        expect(await limiter.take('ip-a>gmail', limit, T0 + 99)).toEqual({ allowed: false, retryAfterMs: 1 });
        for (let i = 1; i <= 20; i++) {
          const at = T0 + i * 100;
          expect(await limiter.take('ip-a>gmail', limit, at)).toEqual({ allowed: true, retryAfterMs: 0 });
          expect(await limiter.take('ip-a>gmail', limit, at)).toEqual({ allowed: false, retryAfterMs: 100 });
        }
      });

      it('allows a take again after exactly the wait it announced', async () => {
        const { limiter } = backend;
        const odd = { ratePerSecond: 7, burst: 3 };
        let now = T0;
        let allowed = 0;
        for (let i = 0; i < 50; i++) {
          const decision = await limiter.take('ip-a>odd', odd, now, 1 + (i % 3));
          if (decision.allowed) {
            allowed += 1;
            continue;
          }
          expect(decision.retryAfterMs).toBeGreaterThan(0);
          expect(await limiter.take('ip-a>odd', odd, now + decision.retryAfterMs - 1, 1 + (i % 3))).toMatchObject({ allowed: false });
          now += decision.retryAfterMs;
          expect(await limiter.take('ip-a>odd', odd, now, 1 + (i % 3))).toEqual({ allowed: true, retryAfterMs: 0 });
        }
        expect(allowed).toBeGreaterThan(0);
      });

      it('keeps keys independent', async () => {
        const { limiter } = backend;
        for (let i = 0; i < 5; i++) await limiter.take('ip-a>gmail', limit, T0);
        expect((await limiter.take('ip-a>gmail', limit, T0)).allowed).toBe(false);
        expect((await limiter.take('ip-b>gmail', limit, T0)).allowed).toBe(true);
        expect((await limiter.take('ip-a>yahoo', limit, T0)).allowed).toBe(true);
      });

      it('charges a cost above 1 as that many tokens, and a refused take charges nothing', async () => {
        const { limiter } = backend;
        expect(await limiter.take('ip-a>gmail', limit, T0, 3)).toEqual({ allowed: true, retryAfterMs: 0 });
        // Two tokens left: three more need one more interval.
        expect(await limiter.take('ip-a>gmail', limit, T0, 3)).toEqual({ allowed: false, retryAfterMs: 100 });
        expect(await limiter.take('ip-a>gmail', limit, T0, 2)).toEqual({ allowed: true, retryAfterMs: 0 });
        expect(await limiter.take('ip-a>gmail', limit, T0, 5)).toEqual({ allowed: false, retryAfterMs: 500 });
        expect(await limiter.take('ip-a>gmail', limit, T0 + 500, 5)).toEqual({ allowed: true, retryAfterMs: 0 });
      });

      for (const table of GCRA_TABLES) {
        it(`takes the decisions of the reference table "${table.name}"`, async () => {
          const decisions = [];
          for (const step of table.steps) decisions.push(await backend.limiter.take(`table:${table.name}`, table.limit, T0 + step.t, step.cost));
          expect(decisions).toEqual(table.steps.map((s) => ({ allowed: s.allowed, retryAfterMs: s.retryAfterMs })));
        });
      }

      it('peeks at a bucket as a take would decide, taking nothing', async () => {
        const { limiter } = backend;
        // Before, between and after takes, a peek answers what a take would, and never changes the next take's answer.
        for (const table of GCRA_TABLES) {
          const key = `peek:${table.name}`;
          for (const step of table.steps) {
            const expected = { allowed: step.allowed, retryAfterMs: step.retryAfterMs };
            for (let i = 0; i < 3; i++) expect(await limiter.peek(key, table.limit, T0 + step.t, step.cost)).toEqual(expected);
            expect(await limiter.take(key, table.limit, T0 + step.t, step.cost)).toEqual(expected);
          }
        }
        expect(await limiter.peek('never-taken', limit, T0)).toEqual({ allowed: true, retryAfterMs: 0 });
        await expect(limiter.peek('k', limit, T0, 6)).rejects.toThrow(/exceeds the burst/);
      });

      it('copes with an interval below the resolution of the clock', async () => {
        // 1e-6 ms per token vanishes when added to an epoch time: the TAT stays at now.
        const fast = { ratePerSecond: 1e9, burst: 1000 };
        for (let i = 0; i < 5; i++) expect(await backend.limiter.take('fast', fast, T0)).toEqual({ allowed: true, retryAfterMs: 0 });
      });

      it('rejects a take that could never be allowed and malformed limits', async () => {
        const { limiter } = backend;
        await expect(limiter.take('k', limit, T0, 6)).rejects.toThrow(/exceeds the burst/);
        await expect(limiter.take('k', limit, T0, 0)).rejects.toThrow(RangeError);
        await expect(limiter.take('k', { ratePerSecond: 0, burst: 5 }, T0)).rejects.toThrow(RangeError);
        await expect(limiter.take('k', { ratePerSecond: 10, burst: 0 }, T0)).rejects.toThrow(RangeError);
        await expect(limiter.take('k', limit, Number.NaN)).rejects.toThrow(RangeError);
        expect(await limiter.take('k', limit, T0, 5)).toEqual({ allowed: true, retryAfterMs: 0 });
      });

      it('shares buckets between instances only when the backend is shared', async () => {
        const other = (await open()).backend;
        for (let i = 0; i < 5; i++) expect((await backend.limiter.take('ip-a>gmail', limit, T0)).allowed).toBe(true);
        expect((await other.limiter.take('ip-a>gmail', limit, T0)).allowed).toBe(!fixture.sharedLimiter);
        expect((await other.limiter.peek('ip-a>gmail', limit, T0)).allowed).toBe(!fixture.sharedLimiter);
      });
    });

    describe('pool state', () => {
      it('sets, replaces, reads and deletes entries', async () => {
        const { state } = backend;
        expect(await state.get('suspend:127.0.0.2')).toBeNull();
        await state.set('suspend:127.0.0.2', 'reason one', T0 + 1000);
        expect(await state.get('suspend:127.0.0.2')).toBe('reason one');
        await state.set('suspend:127.0.0.2', 'reason two', null);
        expect(await state.get('suspend:127.0.0.2')).toBe('reason two');
        await state.delete('suspend:127.0.0.2');
        expect(await state.get('suspend:127.0.0.2')).toBeNull();
        await state.delete('suspend:127.0.0.2');
        expect(await state.list('', T0)).toEqual([]);
      });

      it('hides an entry from its expiry on, and keeps one without expiry', async () => {
        const { state } = backend;
        await state.set('a', '1', T0 + 1000);
        await state.set('b', '2', null);
        clock.set(T0 + 999);
        expect(await state.get('a')).toBe('1');
        expect((await state.list('', clock.now())).map((e) => e.key)).toEqual(['a', 'b']);
        clock.set(T0 + 1000);
        expect(await state.get('a')).toBeNull();
        expect(await state.list('', clock.now())).toEqual([{ key: 'b', value: '2', expiresAt: null }]);
        clock.set(T0 + 400 * DAY);
        expect(await state.get('b')).toBe('2');
      });

      it('treats setting an entry that has already expired as deleting it', async () => {
        const { state } = backend;
        await state.set('a', 'old', null);
        await state.set('a', 'new', T0);
        expect(await state.get('a')).toBeNull();
        expect(await state.list('', T0 - 1)).toEqual([]);
      });

      it('lists the live entries under a prefix in key order, as of the time given', async () => {
        const { state } = backend;
        await state.set('suspend:127.0.0.3|gmail', 'r3', T0 + 5000);
        await state.set('suspend:127.0.0.2|yahoo', 'r2', null);
        await state.set('suspend:127.0.0.2|gmail', 'r1', T0 + 2000);
        await state.set('suspended', 'not under the prefix', null);
        await state.set('plan:127.0.0.2', 'restart', null);
        await state.set('100%_done', 'wildcards are plain characters', null);
        await state.set('100x', 'not under 100%_', null);

        expect(await state.list('suspend:', T0)).toEqual([
          { key: 'suspend:127.0.0.2|gmail', value: 'r1', expiresAt: T0 + 2000 },
          { key: 'suspend:127.0.0.2|yahoo', value: 'r2', expiresAt: null },
          { key: 'suspend:127.0.0.3|gmail', value: 'r3', expiresAt: T0 + 5000 },
        ]);
        expect((await state.list('suspend:', T0 + 2000)).map((e) => e.key)).toEqual(['suspend:127.0.0.2|yahoo', 'suspend:127.0.0.3|gmail']);
        expect((await state.list('100%_', T0)).map((e) => e.key)).toEqual(['100%_done']);
        expect((await state.list('', T0)).map((e) => e.key)).toEqual([
          '100%_done',
          '100x',
          'plan:127.0.0.2',
          'suspend:127.0.0.2|gmail',
          'suspend:127.0.0.2|yahoo',
          'suspend:127.0.0.3|gmail',
          'suspended',
        ]);
        expect(await state.list('nothing', T0)).toEqual([]);
      });

      it('stores any text, and keys and values outside ASCII', async () => {
        const { state } = backend;
        const value = JSON.stringify({ reason: '421 4.7.28 unusual rate — Gmail', until: T0 + 1 }) + '\n\t\u{1F600}';
        await state.set('ip:2001:db8::1|größe', value, null);
        expect(await state.get('ip:2001:db8::1|größe')).toBe(value);
        expect(await state.list('ip:2001:db8::1|gr', T0)).toEqual([{ key: 'ip:2001:db8::1|größe', value, expiresAt: null }]);
      });

      it('keeps the restriction keys of providers and of single sites byte for byte, each apart', async () => {
        const { state } = backend;
        const scopes = [ALL_PROVIDERS, providerScope('other'), siteScope('other', 'mx.tiny-isp.example'), siteScope('other', 'route:[2001:db8::1]:25'), siteScope('other', '100%,ünï')];
        const keys = ['127.0.0.2', '2001:db8::5'].flatMap((ip) => scopes.map((scope) => stateKeys.restriction(ip, scope)));
        for (const key of keys) await state.set(key, key, T0 + HOUR);
        const listed = await state.list('restrict:', T0);
        expect(listed.map((e) => e.key).sort()).toEqual([...keys].sort());
        for (const { key, value } of listed) {
          expect(value).toBe(key);
          const parsed = parseStateKey(key);
          expect(parsed?.kind).toBe('restriction');
          if (parsed?.kind === 'restriction') expect(stateKeys.restriction(parsed.ip, parsed.scope)).toBe(key);
        }
      });

      it('shares entries between instances and keeps them across a restart', async () => {
        const other = (await open()).backend;
        await backend.state.set('suspend:127.0.0.2', 'blocklisted', T0 + HOUR);
        expect(await other.state.get('suspend:127.0.0.2')).toBe('blocklisted');
        await opened[0]!.close();
        const restarted = (await open()).backend;
        expect(await restarted.state.list('suspend:', T0)).toEqual([{ key: 'suspend:127.0.0.2', value: 'blocklisted', expiresAt: T0 + HOUR }]);
        await other.state.delete('suspend:127.0.0.2');
        expect(await restarted.state.get('suspend:127.0.0.2')).toBeNull();
      });

      it('rejects malformed arguments', async () => {
        const { state } = backend;
        await expect(state.set('', 'x', null)).rejects.toThrow(TypeError);
        await expect(state.set('k', 'x', 1.5)).rejects.toThrow(RangeError);
        await expect(state.get('')).rejects.toThrow(TypeError);
        // PostgreSQL text cannot hold NUL, so no backend accepts it.
        await expect(state.set('k', 'a\u0000b', null)).rejects.toThrow(TypeError);
        await expect(state.set('k\u0000', 'x', null)).rejects.toThrow(TypeError);
      });
    });
  });
}
