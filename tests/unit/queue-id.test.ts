import { describe, expect, it } from 'vitest';
import { newQueueId } from '../../src/engine/queue-id.ts';

describe('queue ids', () => {
  it('are 22 hex digits: the time in milliseconds, then 10 random digits; ordered by time, unique', () => {
    const now = Date.UTC(2026, 10, 30, 12);
    const ids = Array.from({ length: 10_000 }, () => newQueueId(now));
    for (const id of ids) expect(id).toMatch(new RegExp(`^${now.toString(16).padStart(12, '0')}[0-9a-f]{10}$`));
    expect(new Set(ids).size).toBe(ids.length);
    // Every random digit varies (none is a fixed UUID version or variant digit).
    for (let i = 12; i < 22; i++) expect(new Set(ids.map((id) => id[i])).size).toBe(16);
    expect(newQueueId(now + 1) > newQueueId(now)).toBe(true);
  });
});
