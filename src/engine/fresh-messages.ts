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
 * The messages this node just committed and may deliver at once, kept in memory for the moment
 * between their commit and their claim, so the first delivery does not read back from the store
 * the body it was handed a moment ago. Each is taken once: later attempts, and messages another
 * node claims or that waited past maxAgeMs or the byte budget (a backlog), are read from the store
 * as before. A stored message's body never changes while it has rows to claim (erasure deletes
 * those rows; only final messages lose their bodies), so a kept copy is the stored one.
 */
export class FreshMessages {
  private readonly clock: Clock;
  private readonly maxBytes: number;
  private readonly maxAgeMs: number;
  /** In the order they were added, which is also the order they grow old in. */
  private readonly kept = new Map<string, { message: StoredMessage; at: number }>();
  private bytes = 0;

  constructor(options: FreshMessagesOptions) {
    this.clock = options.clock;
    this.maxBytes = options.maxBytes ?? 32 << 20;
    this.maxAgeMs = options.maxAgeMs ?? 60_000;
  }

  /** Keeps the messages that are due now (a scheduled send waits in the store). */
  add(messages: readonly NewMessage[]): void {
    const now = this.clock.now();
    for (const m of messages) {
      if (m.dueAt > now || m.body.length > this.maxBytes) continue;
      this.forget(m.id);
      this.kept.set(m.id, { message: storedForm(m), at: now });
      this.bytes += m.body.length;
    }
    this.evict(now);
  }

  /** The message, once: the entry is removed. */
  take(id: string): StoredMessage | undefined {
    const entry = this.kept.get(id);
    if (!entry) return undefined;
    this.forget(id);
    return entry.at >= this.clock.now() - this.maxAgeMs ? entry.message : undefined;
  }

  get size(): number {
    return this.kept.size;
  }

  private forget(id: string): void {
    const entry = this.kept.get(id);
    if (!entry) return;
    this.kept.delete(id);
    this.bytes -= entry.message.body.length;
  }

  private evict(now: number): void {
    for (const [id, entry] of this.kept) {
      if (this.bytes <= this.maxBytes && entry.at >= now - this.maxAgeMs) return;
      this.forget(id);
    }
  }
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
