import { describe, expect, it } from 'vitest';
import { newQueueId } from '../../src/engine/queue-id.ts';
import { queuedReply } from '../../src/smtp/data-acceptance.ts';

describe('the 250 reply to DATA', () => {
  const ids = Array.from({ length: 100 }, (_, i) => newQueueId(Date.UTC(2026, 0, 1) + i));

  it('names the queue id, or each copy of a message split per recipient', () => {
    expect(queuedReply([ids[0]!])).toBe(`2.0.0 Ok: queued as ${ids[0]}`);
    expect(queuedReply(ids.slice(0, 3))).toBe(`2.0.0 Ok: queued as ${ids.slice(0, 3).join(' ')}`);
    expect(queuedReply(ids.slice(0, 16))).toBe(`2.0.0 Ok: queued as ${ids.slice(0, 16).join(' ')}`);
  });

  it('lists at most 16 ids, so the reply line stays within 512 octets (RFC 5321 4.5.3.1.5)', () => {
    const reply = queuedReply(ids);
    expect(reply).toBe(`2.0.0 Ok: queued as ${ids.slice(0, 16).join(' ')} and 84 more (one per recipient)`);
    expect(`250 ${reply}\r\n`.length).toBeLessThanOrEqual(512);
  });
});
