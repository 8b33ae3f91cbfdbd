import type { DeliveryOutcome } from '../mail/delivery-outcome.ts';
import type { ProviderName, ReputationFeed, ReputationSnapshot } from './contracts.ts';

/**
 * Per-(IP, provider) reputation over a sliding window, from the outcomes of the IP's own
 * deliveries and the complaints that arrive later. It judges the IP, so only results that say
 * something about the IP count: acceptances, deferrals for rate or reputation, blocklist and
 * policy refusals. Unknown users, full mailboxes, missing domains, DNS and network failures are
 * the list's or the network's doing and are not counted.
 *
 * Score = accepted / (accepted + 0.5 × deferred + 2 × blocked + 10 × complaints), within 0..1;
 * null while the window holds fewer than `minSamples` outcomes (too few to judge). A clean IP
 * scores 1; one deferral in two gives 0.67; one complaint per 100 acceptances gives 0.91.
 */

export const DEFERRED_WEIGHT = 0.5;
export const BLOCKED_WEIGHT = 2;
export const COMPLAINT_WEIGHT = 10;

/** What one outcome says about the IP. */
export type ReputationInput = 'accepted' | 'deferred' | 'blocked';

/** Wording of a temporary policy refusal that is about the sender's standing (not greylisting, TLS, ...). */
const REPUTATION_WORDING = /reputation|complain|unsolicited|\bspam|block.?list|black.?list|blocked|suspicious|unexpected volume/i;

/**
 * How an outcome counts: delivered -> accepted; a rate-limited reply, or a temporary refusal for
 * spam or reputation -> deferred; a permanent spam / blocklist / policy refusal -> blocked;
 * anything else (unknown user, mailbox full, no mail domain, DNS, connection, content, local
 * waits) -> null, not counted.
 */
export function reputationInputOf(outcome: DeliveryOutcome): ReputationInput | null {
  if (outcome.disposition === 'delivered') return 'accepted';
  // 'throttled' is a local wait for an eligible IP: no remote said anything.
  if (outcome.disposition === 'throttled') return null;
  // X.2.x is the recipient's mailbox (full, receiving too fast, disabled): about the recipient.
  if (outcome.enhanced && /^[45]\.2\./.test(outcome.enhanced)) return null;
  if (outcome.bounceClass === 'rate-limited') return 'deferred';
  if (outcome.disposition === 'transient') {
    if (outcome.bounceClass === 'spam') return 'deferred';
    if (outcome.bounceClass === 'policy' && REPUTATION_WORDING.test(outcome.response)) return 'deferred';
    return null;
  }
  return outcome.bounceClass === 'spam' || outcome.bounceClass === 'policy' ? 'blocked' : null;
}

/** The score of a window's counts; null below `minSamples` outcomes. */
export function reputationScore(counts: Omit<ReputationSnapshot, 'score'>, minSamples: number): number | null {
  const { accepted, deferred, blocked, complaints } = counts;
  const samples = accepted + deferred + blocked;
  if (samples === 0 || samples < minSamples) return null;
  const score = accepted / (accepted + deferred * DEFERRED_WEIGHT + blocked * BLOCKED_WEIGHT + complaints * COMPLAINT_WEIGHT);
  return Math.min(1, Math.max(0, score));
}

export interface ReputationTrackerOptions {
  windowMs: number;
  minSamples: number;
  /** Width of one bucket; the window slides bucket by bucket. Default: a sixtieth of the window. */
  bucketMs?: number;
}

export interface ReputationEntry {
  ip: string;
  provider: ProviderName;
  snapshot: ReputationSnapshot;
}

export interface ReputationTracker extends ReputationFeed {
  /** Every (IP, provider) with something in the window, for metrics and the control API. */
  entries(now: number): ReputationEntry[];
}

interface Bucket {
  /** floor(time / bucketMs) of the counts held; -Infinity for a slot never used. */
  index: number;
  accepted: number;
  deferred: number;
  blocked: number;
  complaints: number;
}

interface Series {
  ip: string;
  provider: ProviderName;
  /** Ring of the window's buckets, slot = index mod length. */
  buckets: Bucket[];
  /** Newest bucket index written. */
  latest: number;
}

type Field = 'accepted' | 'deferred' | 'blocked' | 'complaints';

/**
 * An in-process tracker: each node judges its own IPs from its own deliveries. Memory is
 * bounded: each (IP, provider) holds one ring of buckets, and a pair with nothing in the window
 * is dropped. The window covers the current bucket and the ones before it, so it is exact to
 * one bucket width.
 */
export function createReputationTracker({
  windowMs,
  minSamples,
  bucketMs = Math.max(1, Math.ceil(windowMs / 60)),
}: ReputationTrackerOptions): ReputationTracker {
  if (!(windowMs > 0)) throw new RangeError(`reputation window must be above zero, got ${windowMs}`);
  if (!(bucketMs > 0) || bucketMs > windowMs) throw new RangeError(`reputation bucket must be above zero and at most the window, got ${bucketMs}`);
  if (!Number.isInteger(minSamples) || minSamples < 1) throw new RangeError(`reputation minSamples must be a positive integer, got ${minSamples}`);

  const slots = Math.ceil(windowMs / bucketMs);
  const series = new Map<string, Series>();
  let lastSweep = -Infinity;

  const keyOf = (ip: string, provider: ProviderName) => `${ip}\u0000${provider}`;
  const indexOf = (now: number) => Math.floor(now / bucketMs);
  const inWindow = (index: number, current: number) => index > current - slots && index <= current;

  function add(ip: string, provider: ProviderName, field: Field, now: number): void {
    sweep(now);
    const index = indexOf(now);
    const key = keyOf(ip, provider);
    let s = series.get(key);
    if (!s) {
      s = { ip, provider, latest: index, buckets: Array.from({ length: slots }, () => emptyBucket(-Infinity)) };
      series.set(key, s);
    }
    const slot = s.buckets[((index % slots) + slots) % slots]!;
    // A record older than the slot's bucket belongs to a window that has already slid past.
    if (slot.index > index) return;
    if (slot.index < index) Object.assign(slot, emptyBucket(index));
    slot[field] += 1;
    s.latest = Math.max(s.latest, index);
  }

  function countsOf(s: Series | undefined, now: number): ReputationSnapshot {
    const totals = { accepted: 0, deferred: 0, blocked: 0, complaints: 0 };
    const current = indexOf(now);
    for (const b of s?.buckets ?? []) {
      if (!inWindow(b.index, current)) continue;
      totals.accepted += b.accepted;
      totals.deferred += b.deferred;
      totals.blocked += b.blocked;
      totals.complaints += b.complaints;
    }
    return { ...totals, score: reputationScore(totals, minSamples) };
  }

  /** Drops pairs whose newest bucket has left the window; at most once per bucket width. */
  function sweep(now: number): void {
    if (now - lastSweep < bucketMs) return;
    lastSweep = now;
    const current = indexOf(now);
    for (const [key, s] of series) if (s.latest <= current - slots) series.delete(key);
  }

  return {
    record(ip, provider, outcome, now) {
      const input = reputationInputOf(outcome);
      if (input) add(ip, provider, input, now);
    },
    recordComplaint(ip, provider, now) {
      add(ip, provider, 'complaints', now);
    },
    snapshot(ip, provider, now) {
      sweep(now);
      return countsOf(series.get(keyOf(ip, provider)), now);
    },
    entries(now) {
      sweep(now);
      return [...series.values()].map((s) => ({ ip: s.ip, provider: s.provider, snapshot: countsOf(s, now) }));
    },
  };
}

function emptyBucket(index: number): Bucket {
  return { index, accepted: 0, deferred: 0, blocked: 0, complaints: 0 };
}
