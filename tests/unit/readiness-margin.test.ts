import { describe, expect, it } from 'vitest';
import { minFreeBytesFor } from '../../src/control-api/readiness.ts';

const MIB = 1 << 20;

describe('the free space a node needs to be ready', () => {
  it('is one and a half of the largest message accepted', () => {
    expect(minFreeBytesFor(25 * MIB)).toBe(37.5 * MIB);
    expect(minFreeBytesFor(100 * MIB)).toBe(150 * MIB);
    expect(minFreeBytesFor(10_000_001)).toBe(15_000_002);
  });

  it('is never under 8 MiB, however small the messages', () => {
    expect(minFreeBytesFor(1024)).toBe(8 * MIB);
    expect(minFreeBytesFor(5 * MIB)).toBe(8 * MIB);
  });
});
