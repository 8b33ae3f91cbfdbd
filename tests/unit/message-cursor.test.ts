import { describe, expect, it } from 'vitest';
import { decodeMessageCursor, encodeMessageCursor, MalformedCursorError } from '../../src/control-api/v1/cursor.ts';

describe('message page cursors', () => {
  it('round-trip the sort key, ids of any characters included', () => {
    for (const key of [{ createdAt: 0, id: 'a' }, { createdAt: 1_764_496_800_000, id: '019ad3f2c1e04b7a9d21ff' }, { createdAt: 5, id: 'ü/+ =' }]) {
      const cursor = encodeMessageCursor(key);
      expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(decodeMessageCursor(cursor)).toEqual(key);
    }
  });

  it('refuses anything it did not make', () => {
    const bad = ['', '!!', 'e30', encodeMessageCursor({ createdAt: 1, id: 'x' }) + '=', b64('[1]'), b64('[1.5,"x"]'), b64('[-1,"x"]'), b64('[1,""]'), b64('[1,2]'), b64('{"createdAt":1}'), b64('not json')];
    for (const cursor of bad) expect(() => decodeMessageCursor(cursor), cursor).toThrow(MalformedCursorError);
  });
});

function b64(text: string): string {
  return Buffer.from(text).toString('base64url');
}
