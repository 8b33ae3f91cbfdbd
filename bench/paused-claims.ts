/**
 * Paused-backlog benchmark: what a large paused backlog costs the claims of all other mail, read
 * at the store (the scheduler's claim and its next-due read run on the daemon's event loop with
 * SQLite). Fills a queue (a SQLite file, or a scratch PostgreSQL database on DATABASE_URL's
 * server) with --paused due recipients of one paused domain, then runs rounds of other traffic:
 * --batch new recipients of open domains queued, claimed as the scheduler claims (the pauses
 * filtered), their results recorded, and the next due time read. It alternates two phases,
 * --pairs times each (A, B, A, B): `filtered`, the paused rows left where they are and only
 * passed over by the claims' filter (as before parking), and `parked` (QueueControl.parkPaused).
 * Between them the backlog is parked, or released and paused again, and those moves are timed
 * too. Writes JSON to bench/results/ and prints a table.
 *
 *   npm run bench:paused -- --storage sqlite --paused 100000
 *   npm run bench:paused -- --storage postgres --paused 100000 --rounds 300
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { systemClock } from '../src/clock.ts';
import type { DeliveryOutcome } from '../src/mail/delivery-outcome.ts';
import { createLogger } from '../src/observability/logger.ts';
import { createStore } from '../src/storage/create-store.ts';
import type { PausedScopes, QueuePause } from '../src/storage/queue-control.ts';
import { createScratchDatabase } from '../tests/helpers/postgres.ts';
import { postgresUrl } from '../tests/helpers/services.ts';
import { newMessage } from '../tests/helpers/new-message.ts';
import { percentile, round } from './stats.ts';

const { values: args } = parseArgs({
  options: {
    storage: { type: 'string', default: 'sqlite' },
    paused: { type: 'string', default: '100000' },
    /** Claims measured per phase (after a few that are not: statements prepared, caches warm). */
    rounds: { type: 'string', default: '200' },
    /** Recipients queued and claimed per round: the scheduler's free slots. */
    batch: { type: 'string', default: '32' },
    pairs: { type: 'string', default: '2' },
    name: { type: 'string' },
  },
});
if (args.storage !== 'sqlite' && args.storage !== 'postgres') throw new Error('--storage is sqlite or postgres');
const pausedRows = Number(args.paused);
const rounds = Number(args.rounds);
const batch = Number(args.batch);
const pairs = Number(args.pairs);
const WARMUP_ROUNDS = 10;
/** Rows per park or release call, as the daemon moves them (src/engine/paused-mail.ts). */
const CHUNK = 2_000;

const dir = mkdtempSync(join(tmpdir(), 'rookery-bench-paused-'));
const scratch = args.storage === 'postgres' ? await createScratchDatabase(postgresUrl(), 'benchpaused') : null;
const store = await createStore(scratch ? { driver: 'postgres', url: scratch.url, path: '' } : { driver: 'sqlite', path: join(dir, 'queue.db') }, { logger: createLogger('silent'), clock: systemClock });
await store.migrate();

const scope = { kind: 'domain', domain: 'paused.test' } as const;
const pause = (): QueuePause => ({ scope, reason: 'benchmark', by: 'bench', createdAt: Date.now(), until: null });
const filter: PausedScopes = { domains: ['paused.test'], pools: [], tenants: [] };
const delivered: DeliveryOutcome = { disposition: 'delivered', code: 250, enhanced: '2.0.0', response: '250 ok', stage: 'dot', bounceClass: 'none', remoteHost: 'mx.open.test', egressIp: '127.0.0.2' };

// The paused backlog: due an hour ago, so every claim's due-order walk starts on it.
const filled = performance.now();
const hourAgo = Date.now() - 3_600_000;
for (let from = 0; from < pausedRows; from += 1_000) {
  const count = Math.min(1_000, pausedRows - from);
  await store.enqueue(Array.from({ length: count }, (_, i) => newMessage(`paused-${from + i}`, hourAgo, { recipients: [`user${from + i}@paused.test`] })));
}
await store.setPause(pause(), Date.now());
console.error(`${pausedRows} paused recipients queued in ${round((performance.now() - filled) / 1000, 1)} s (${args.storage})`);

let sequence = 0;

/** One round of other traffic: queue `batch`, claim them, record them delivered; returns the claim's and the next-due read's times (ms). */
async function otherTraffic(): Promise<{ claim: number; next: number }> {
  const now = Date.now();
  await store.enqueue(Array.from({ length: batch }, () => newMessage(`open-${sequence++}`, now, { recipients: [`user${sequence % 50}@open${sequence % 10}.test`] })));
  const started = performance.now();
  const claimed = await store.claimDue({ now, limit: batch, owner: 'bench', leaseMs: 60_000, paused: filter });
  const claim = performance.now() - started;
  if (claimed.length !== batch || claimed.some((c) => c.domain === 'paused.test')) throw new Error(`a claim took ${claimed.length} rows, some of them paused`);
  await store.recordAttempts(claimed.map((c) => ({ recipientId: c.recipientId, token: c.token, outcome: delivered, newState: 'delivered', countsAsAttempt: true })));
  const nextStarted = performance.now();
  await store.nextDueAt(filter);
  return { claim, next: performance.now() - nextStarted };
}

async function phase(name: 'filtered' | 'parked') {
  for (let i = 0; i < WARMUP_ROUNDS; i++) await otherTraffic();
  const claims: number[] = [];
  const nexts: number[] = [];
  const started = performance.now();
  for (let i = 0; i < rounds; i++) {
    const { claim, next } = await otherTraffic();
    claims.push(claim);
    nexts.push(next);
  }
  const seconds = (performance.now() - started) / 1000;
  const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
  return {
    phase: name,
    claimMsP50: round(percentile(claims, 50), 2),
    claimMsP95: round(percentile(claims, 95), 2),
    claimMsMean: round(mean(claims), 2),
    nextDueMsP50: round(percentile(nexts, 50), 2),
    nextDueMsMean: round(mean(nexts), 2),
    /** Recipients of other mail claimed and recorded per second over the phase (enqueue, claim, record, next-due read). */
    roundsRecipientsPerSecond: round((rounds * batch) / seconds, 0),
  };
}

/** Repeats a bulk store move until a call moves fewer than asked: the whole move's time and its longest call (ms). */
async function timed(move: () => Promise<boolean>): Promise<{ totalMs: number; longestCallMs: number; calls: number }> {
  const started = performance.now();
  let longest = 0;
  let calls = 0;
  for (let more = true; more; ) {
    const call = performance.now();
    more = await move();
    longest = Math.max(longest, performance.now() - call);
    calls++;
  }
  return { totalMs: round(performance.now() - started, 0), longestCallMs: round(longest, 1), calls };
}

const park = () => timed(async () => (await store.parkPaused(scope, Date.now() + 60_000, Date.now(), CHUNK)) === CHUNK);
async function releaseAndPauseAgain() {
  await store.deletePause(scope, Date.now());
  let after: number | null = 0;
  const moved = await timed(async () => {
    const chunk = await store.releaseParked(Date.now(), CHUNK, after ?? 0);
    after = chunk.next;
    return after !== null;
  });
  await store.setPause(pause(), Date.now());
  return moved;
}

const phases = [];
const moves = [];
for (let pair = 0; pair < pairs; pair++) {
  phases.push(await phase('filtered'));
  moves.push({ move: 'park', ...(await park()) });
  phases.push(await phase('parked'));
  if (pair < pairs - 1) moves.push({ move: 'release', ...(await releaseAndPauseAgain()) });
}
await store.close();

const result = {
  name: args.name ?? `paused-claims-${args.storage}-${pausedRows}`,
  at: new Date().toISOString(),
  storage: args.storage,
  pausedRows,
  rounds,
  batch,
  phases,
  moves,
};
mkdirSync(join(import.meta.dirname, 'results'), { recursive: true });
writeFileSync(join(import.meta.dirname, 'results', `${result.at.replace(/[:.]/g, '-')}-${result.name}.json`), `${JSON.stringify(result, null, 2)}\n`);
console.table(phases);
console.table(moves);
await scratch?.drop();
rmSync(dir, { recursive: true, force: true });
