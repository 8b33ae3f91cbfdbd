import { describe, expect, it } from 'vitest';
import { readable, readableBounded } from '../../src/mail/remote-text.ts';

describe('remote text made safe to store and show', () => {
  it('writes out each control character (C0, DEL, C1) as \\xNN and leaves the rest as sent', () => {
    expect(readable('550 \u001b[31mno\u001b[0m\r\nX: 1\u0000\u007f\u009b ünï')).toBe('550 \\x1b[31mno\\x1b[0m\\x0d\\x0aX: 1\\x00\\x7f\\x9b ünï');
  });

  it('cuts a long text to the limit, ending in … and never in half a \\xNN or half a surrogate pair', () => {
    expect(readableBounded('short', 10)).toBe('short');
    expect(readableBounded('x'.repeat(10), 10)).toBe('x'.repeat(10));
    expect(readableBounded('x'.repeat(11), 10)).toBe(`${'x'.repeat(9)}…`);
    // 'abcdef' + \x1b is cut inside the escape: the escape goes whole.
    expect(readableBounded('abcdef\u001bzzzz', 9)).toBe('abcdef…');
    expect(readableBounded('abcdefg\u001bzzzz', 9)).toBe('abcdefg…');
    expect(readableBounded('abcdefgh😀zzz', 10)).toBe('abcdefgh…');
    for (let max = 2; max < 20; max++) expect(readableBounded('ab\u0000cd😀ef\u001b'.repeat(3), max).length).toBeLessThanOrEqual(max);
  });
});
