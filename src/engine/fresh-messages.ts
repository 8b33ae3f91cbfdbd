import type { Clock } from '../clock.ts';
import type { NewMessage, StoredMessage } from '../storage/store.ts';

export interface FreshMessagesOptions {
  clock: Clock;
  /** Bodies kept at most, in bytes. */
  maxBytes?: number;
  /** A message not claimed within this long is forgotten (its delivery loads it from the store). */
  maxAgeMs?: number;
}

/**
 * The messages this node is committing and may deliver at once, kept in memory until they are
 * claimed, so the first delivery does not read back from the store the body it was handed a
 * moment ago. Each is taken once: later attempts, and messages another
 * node claims or that waited past maxAgeMs or the byte budget (a backlog), are read from the store
 * as before. A stored message's body never changes while it has rows to claim (erasure deletes
 * those rows; only final messages lose their bodies), so a kept copy is the stored one.
 */
export class FreshMessages {
  private readonly clock: Clock;
  private readonly maxBytes: number;
  private readonly maxAgeMs: number;
  /** In the order they were added, which is also the order they grow old in. */
  private readonly kept = new Map<string, { message: StoredMessage; at: number; cost: number }>();
  private bytes = 0;

  constructor(options: FreshMessagesOptions) {
    this.clock = options.clock;
    this.maxBytes = options.maxBytes ?? 32 << 20;
    this.maxAgeMs = options.maxAgeMs ?? 60_000;
  }

  /**
   * Keeps the messages that have a recipient to deliver now: not a scheduled send, which waits
   * in the store, nor one whose every recipient was stored final (suppressed), which no claim takes.
   * Called before the commit, so a claim in the same write batch finds them; forget() them when
   * the commit fails or stores nothing.
   */
  add(messages: readonly NewMessage[]): void {
    const now = this.clock.now();
    for (const m of messages) {
      const cost = costOf(m.body);
      if (m.dueAt > now || (m.suppressed?.length ?? 0) >= m.recipients.length || cost > this.maxBytes) continue;
      this.forget(m.id);
      this.kept.set(m.id, { message: storedForm(m), at: now, cost });
      this.bytes += cost;
    }
    this.evict(now);
  }

  /** The message, once: the entry is removed. */
  take(id: string): StoredMessage | undefined {
    const entry = this.kept.get(id);
    if (!entry) return undefined;
    this.forget(id);
    const now = this.clock.now();
    this.evict(now);
    return entry.at >= now - this.maxAgeMs ? entry.message : undefined;
  }

  forget(id: string): void {
    const entry = this.kept.get(id);
    if (!entry) return;
    this.kept.delete(id);
    this.bytes -= entry.cost;
  }

  get size(): number {
    return this.kept.size;
  }

  private evict(now: number): void {
    for (const [id, entry] of this.kept) {
      if (this.bytes <= this.maxBytes && entry.at >= now - this.maxAgeMs) return;
      this.forget(id);
    }
  }
}

/**
 * What a kept body holds in memory: its bytes, and at least the slab Node allocates a small buffer
 * in (Buffer.poolSize, 64 KiB on Node 24; a small message comes from Buffer.concat), which the
 * body keeps from being freed. So the default budget keeps 512 small messages: far more than a
 * node has between commits and claims, unless it has a backlog, when the store serves them.
 */
function costOf(body: Buffer): number {
  return Math.max(body.length, Buffer.poolSize);
}

/** What the store would give back for the message (toStoredMessage of its row). */
function storedForm(m: NewMessage): StoredMessage {
  return {
    id: m.id,
    sender: m.sender,
    messageIdHeader: m.messageIdHeader,
    body: m.body,
    submitter: m.submitter,
    source: m.source,
    createdAt: m.createdAt,
    pool: m.pool,
    tenant: m.tenant ?? null,
  };
}
