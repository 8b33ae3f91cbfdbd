import type { Clock } from '../clock.ts';
import type { ReverseLookup } from './submission-listener.ts';

/**
 * Reverse DNS of client addresses, remembered for a while. Every connection waits for its
 * client's reverse lookup before the greeting (smtp-server gives it up to 1.5 s), and an
 * application that opens a connection per message comes back from the same address many times
 * a second: without this, each of its messages waits for a DNS round trip (or the whole 1.5 s
 * when the PTR's servers do not answer) and costs a query. Lookups for one address that overlap
 * share one query. A failed lookup is remembered for a shorter time, as an empty answer.
 */

export interface ReverseLookupCacheOptions {
  lookup: ReverseLookup;
  clock: Clock;
  /** How long names found are kept (default 5 minutes). */
  ttlMs?: number;
  /** How long a failed lookup or no names is kept (default 1 minute). */
  negativeTtlMs?: number;
  /** Addresses kept at most; the oldest entry goes first (default 10,000). */
  maxEntries?: number;
}

interface Entry {
  names: Promise<string[]>;
  expiresAt: number;
}

export function cachedReverseLookup(options: ReverseLookupCacheOptions): ReverseLookup {
  const { lookup, clock, ttlMs = 5 * 60_000, negativeTtlMs = 60_000, maxEntries = 10_000 } = options;
  // Insertion order is age order: a refreshed entry is deleted and set again.
  const entries = new Map<string, Entry>();

  return (ip) => {
    const now = clock.now();
    const cached = entries.get(ip);
    if (cached && cached.expiresAt > now) return cached.names;
    entries.delete(ip);

    // In flight: overlapping lookups share it until it settles, then it is kept for its TTL.
    const entry: Entry = { names: Promise.resolve([]), expiresAt: Number.POSITIVE_INFINITY };
    entry.names = lookup(ip).then(
      (names) => {
        entry.expiresAt = clock.now() + (names.length > 0 ? ttlMs : negativeTtlMs);
        return names;
      },
      () => {
        entry.expiresAt = clock.now() + negativeTtlMs;
        return [];
      },
    );
    entries.set(ip, entry);
    if (entries.size > maxEntries) entries.delete(entries.keys().next().value!);
    return entry.names;
  };
}
