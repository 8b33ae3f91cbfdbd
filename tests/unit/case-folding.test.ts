import { describe, expect, it } from 'vitest';
import { caseVariants, foldCase, foldedAddress } from '../../src/storage/case-folding.ts';

/**
 * Addresses in any case as PostgreSQL's lower() compares them, and how SQLite finds their rows on
 * an index of its own lower(), which folds ASCII only.
 */

const variants = caseVariants();

describe('foldCase', () => {
  it("lowers every script's letters one code point for one, as PostgreSQL's lower() does", () => {
    expect(foldCase('Erin.Subject@Dest.TEST')).toBe('erin.subject@dest.test');
    expect(foldCase('JÖRG.ÄHNLICH@dest.test')).toBe('jörg.ähnlich@dest.test');
    expect(foldCase('ЁЛКА@dest.test')).toBe('ёлка@dest.test');
    // Not the full mapping of toLowerCase(): İ is i alone, a final Σ is σ.
    expect(foldCase('İLKER@dest.test')).toBe('ilker@dest.test');
    expect(foldCase('ΟΔΥΣΣΕΥΣ@dest.test')).toBe('οδυσσευσ@dest.test');
    expect([...foldCase('İ')]).toHaveLength(1);
    // No normalization either: a precomposed ö and o with a combining diaeresis stay two spellings.
    expect(foldCase('O\u0308')).toBe('o\u0308');
  });
});

describe('caseVariants', () => {
  it('lists for a lower-case letter every other letter folding to it, not only its upper case', () => {
    expect(variants.get('ö')).toEqual(['Ö']);
    expect(variants.get('k')).toEqual(['K', '\u212a']);
    expect(variants.get('ß')).toEqual(['\u1e9e']);
    expect(variants.get('ǆ')).toEqual(['Ǆ', 'ǅ']);
    expect(variants.has('@')).toBe(false);
  });

  it('misses no code point: each one asked for its lower case gives the same table', () => {
    const everyOne = new Map<string, string[]>();
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const c = String.fromCodePoint(cp);
      if (foldCase(c) !== c) everyOne.set(foldCase(c), [...(everyOne.get(foldCase(c)) ?? []), c]);
    }
    expect(variants).toEqual(everyOne);
  });
});

describe('foldedAddress', () => {
  it('gives the spellings as SQLite lower() leaves them, and a LIKE pattern every one matches', () => {
    expect(foldedAddress('Jörg@Dest.test', variants)).toEqual({ folded: 'jörg@dest.test', like: 'J_rg@Dest.test', prefixes: ['jörg@dest.test', 'jÖrg@dest.test'] });
    // An ASCII k or i may be stored as the Kelvin sign or a dotted capital I, which lower() folds to them.
    expect(foldedAddress('ki@x.test', variants).prefixes).toEqual(['ki@x.test', 'kİ@x.test', '\u212ai@x.test', '\u212aİ@x.test']);
    expect(foldedAddress('ki@x.test', variants).like).toBe('__@x.test');
    // LIKE's own characters stand for themselves.
    expect(foldedAddress('a_b%c@x.test', variants).like).toBe('a\\_b\\%c@x.test');
  });

  it('stops the spellings at the limit: the rest of the address is left to the check', () => {
    const address = 'ёлкаёлка@dest.test';
    const { prefixes } = foldedAddress(address, variants, 16);
    expect(prefixes).toHaveLength(16);
    expect(prefixes).toContain('ёлка');
    expect(prefixes).toContain('ЁЛКА');
    expect(foldedAddress(address, variants, 1).prefixes).toEqual(['']);
  });
});
