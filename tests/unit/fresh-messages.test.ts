import { describe, expect, it } from 'vitest';
import { FreshMessages } from '../../src/engine/fresh-messages.ts';
import { manualClock } from '../helpers/manual-clock.ts';
import { newMessage } from '../helpers/new-message.ts';

const T0 = 1_700_000_000_000;
const sized = (id: string, bytes: number) => newMessage(id, T0, { body: Buffer.alloc(bytes, 'x') });

describe('fresh messages', () => {
  it('gives a message just committed to its first delivery once, in the form the store keeps', () => {
    const fresh = new FreshMessages({ clock: manualClock(T0) });
    const m = newMessage('q1', T0, { tenant: 'acme' });
    fresh.add([m]);
    expect(fresh.take('q1')).toEqual({
      id: 'q1', sender: m.sender, messageIdHeader: m.messageIdHeader, body: m.body, submitter: m.submitter,
      source: 'smtp', createdAt: T0, pool: 'default', tenant: 'acme',
    });
    // A second claim (a retry, another site's job started later) reads the store.
    expect(fresh.take('q1')).toBeUndefined();
    fresh.add([newMessage('q2', T0)]);
    expect(fresh.take('q2')!.tenant).toBeNull();
  });

  it('keeps no scheduled send: it waits in the store until it is due', () => {
    const fresh = new FreshMessages({ clock: manualClock(T0) });
    fresh.add([newMessage('later', T0, { dueAt: T0 + 60_000 }), newMessage('now', T0)]);
    expect(fresh.take('later')).toBeUndefined();
    expect(fresh.take('now')).toBeDefined();
  });

  it('forgets a message not claimed within maxAgeMs, even with nothing added since', () => {
    const clock = manualClock(T0);
    const fresh = new FreshMessages({ clock, maxAgeMs: 1_000 });
    fresh.add([newMessage('old', T0)]);
    clock.advance(1_001);
    expect(fresh.take('old')).toBeUndefined();
    fresh.add([newMessage('a', T0)]);
    clock.advance(600);
    fresh.add([newMessage('b', T0)]);
    clock.advance(600);
    // Adding evicts what grew old, oldest first; what is younger stays.
    fresh.add([newMessage('c', T0)]);
    expect(fresh.size).toBe(2);
    expect(fresh.take('a')).toBeUndefined();
    expect(fresh.take('b')).toBeDefined();
  });

  it('holds at most maxBytes of bodies, dropping the oldest first; a body larger than that is never kept', () => {
    const fresh = new FreshMessages({ clock: manualClock(T0), maxBytes: 10_000 });
    fresh.add([sized('a', 4_000), sized('b', 4_000)]);
    fresh.add([sized('c', 4_000)]);
    expect(fresh.take('a')).toBeUndefined();
    expect(fresh.take('b')).toBeDefined();
    expect(fresh.take('c')).toBeDefined();
    fresh.add([sized('huge', 10_001), sized('d', 100)]);
    expect(fresh.take('huge')).toBeUndefined();
    expect(fresh.take('d')).toBeDefined();
    // Taken entries gave their bytes back: three of 4,000 fit again.
    fresh.add([sized('e', 3_000), sized('f', 3_000), sized('g', 3_000)]);
    expect(fresh.size).toBe(3);
  });

  it('counts a message added twice once', () => {
    const fresh = new FreshMessages({ clock: manualClock(T0), maxBytes: 10_000 });
    fresh.add([sized('a', 6_000)]);
    fresh.add([sized('a', 6_000)]);
    fresh.add([sized('b', 3_000)]);
    expect(fresh.size).toBe(2);
  });
});
