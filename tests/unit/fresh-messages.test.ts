import { describe, expect, it } from 'vitest';
import { FreshMessages } from '../../src/engine/fresh-messages.ts';
import { manualClock } from '../helpers/manual-clock.ts';
import { newMessage } from '../helpers/new-message.ts';

const T0 = 1_700_000_000_000;
const sized = (id: string, bytes: number) => newMessage(id, T0, { body: Buffer.alloc(bytes, 'x') });
/** Bodies of this size or more count as their length; smaller ones as Node's buffer slab. */
const P = Buffer.poolSize;

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
    const fresh = new FreshMessages({ clock: manualClock(T0), maxBytes: 5 * P });
    fresh.add([sized('a', 2 * P), sized('b', 2 * P)]);
    fresh.add([sized('c', 2 * P)]);
    expect(fresh.take('a')).toBeUndefined();
    expect(fresh.take('b')).toBeDefined();
    expect(fresh.take('c')).toBeDefined();
    fresh.add([sized('huge', 5 * P + 1), sized('d', 2 * P)]);
    expect(fresh.take('huge')).toBeUndefined();
    expect(fresh.take('d')).toBeDefined();
    // Taken entries gave their bytes back: two fit again.
    fresh.add([sized('e', 2 * P), sized('f', 2 * P)]);
    expect(fresh.size).toBe(2);
  });

  it('counts a small body as the 8 KiB slab it keeps alive', () => {
    const fresh = new FreshMessages({ clock: manualClock(T0), maxBytes: 3 * P });
    fresh.add(['a', 'b', 'c', 'd'].map((id) => sized(id, 100)));
    expect(fresh.size).toBe(3);
    expect(fresh.take('a')).toBeUndefined();
  });

  it('keeps no message whose every recipient was stored final, since no claim takes it', () => {
    const fresh = new FreshMessages({ clock: manualClock(T0) });
    const outcome = { disposition: 'bounced' } as never;
    fresh.add([
      newMessage('all', T0, { recipients: ['a@x.test'], suppressed: [{ recipient: 'a@x.test', outcome }] }),
      newMessage('some', T0, { recipients: ['a@x.test', 'b@x.test'], suppressed: [{ recipient: 'a@x.test', outcome }] }),
    ]);
    expect(fresh.take('all')).toBeUndefined();
    expect(fresh.take('some')).toBeDefined();
  });

  it('lets go of what grew old when a message is taken, not only when one is added', () => {
    const clock = manualClock(T0);
    const fresh = new FreshMessages({ clock, maxAgeMs: 1_000 });
    fresh.add([newMessage('old', T0), newMessage('taken', T0)]);
    clock.advance(1_001);
    expect(fresh.take('taken')).toBeUndefined();
    expect(fresh.size).toBe(0);
  });

  it('forgets a message whose commit failed', () => {
    const fresh = new FreshMessages({ clock: manualClock(T0) });
    fresh.add([newMessage('q', T0)]);
    fresh.forget('q');
    fresh.forget('never-added');
    expect(fresh.take('q')).toBeUndefined();
    expect(fresh.size).toBe(0);
  });

  it('counts a message added twice once', () => {
    const fresh = new FreshMessages({ clock: manualClock(T0), maxBytes: 5 * P });
    fresh.add([sized('a', 2 * P)]);
    fresh.add([sized('a', 2 * P)]);
    fresh.add([sized('b', 2 * P)]);
    expect(fresh.size).toBe(2);
  });
});
