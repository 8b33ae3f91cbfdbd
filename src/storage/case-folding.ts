import { isAscii } from '../mail/address.ts';

/*
 * Addresses compared without regard to case as PostgreSQL compares them (lower() of a UTF-8
 * database, whose ctype maps every letter: `JÖRG@` and `jörg@` are one address there), so that
 * SQLite, whose lower() folds ASCII only, finds the same rows. SQLite is given the folding as a
 * function of its connection (rookery_fold); an index cannot use it without every program that
 * writes the table (the sqlite3 shell, a restore) knowing the function, so the rows are found on
 * the index of lower(recipient) by the spellings the address may have, and the function only
 * checks the few rows found.
 */

/**
 * lower() as PostgreSQL computes it: each code point by its simple lower-case mapping, one for
 * one, without context. toLowerCase() is the full mapping, which differs in two places: İ
 * (U+0130) becomes i with a combining dot, and Σ at the end of a word ς.
 */
export function foldCase(text: string): string {
  if (isAscii(text)) return text.toLowerCase();
  return text.replace(/[\u0130\u03a3]/g, (c) => (c === '\u0130' ? 'i' : '\u03c3')).toLowerCase();
}

/** Lower case of ASCII letters only, as SQLite's lower() gives it. */
export function asciiLower(text: string): string {
  return text.replace(/[A-Z]+/g, (s) => s.toLowerCase());
}

/** For a lower-case character, the others whose lower case it is: Ö for ö; K and the Kelvin sign K for k. */
export type CaseVariants = ReadonlyMap<string, readonly string[]>;

/** Beyond it, planes 2 and up hold ideographs and private use: nothing there has a case. */
const LAST_CASED = 0x1ffff;
/** The characters whose lower case is another: the only ones worth asking for it. */
const LOWERS = /\p{Changes_When_Lowercased}/u;

/** Every code point up to LAST_CASED asked for its lower case: some 35-90 ms, so built once per store, on its first use. */
export function caseVariants(): CaseVariants {
  const variants = new Map<string, string[]>();
  for (let cp = 0; cp <= LAST_CASED; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const c = String.fromCodePoint(cp);
    if (!LOWERS.test(c)) continue;
    const lower = foldCase(c);
    if (lower === c) continue;
    const list = variants.get(lower);
    if (list) list.push(c);
    else variants.set(lower, [c]);
  }
  return variants;
}

/** How SQLite looks for the rows of one address in any case. */
export interface FoldedAddress {
  /** foldCase of the address: the rows whose rookery_fold(recipient) equals it are the address's. */
  folded: string;
  /**
   * A LIKE pattern (ESCAPE '\') every such row matches: a character as itself where no other
   * folds alike but its ASCII case (which LIKE ignores), else `_`. The built-in LIKE leaves the
   * function only the rows that may match, on a scan of the queued rows.
   */
  like: string;
  /**
   * The starts of every spelling the address may have, as SQLite's lower() gives them (ö and Ö
   * stay apart): each a range of an index of lower(recipient), which holds every row of the
   * address. At most `maxPrefixes`: past that, the rest of the address is left to the check.
   */
  prefixes: string[];
}

export function foldedAddress(address: string, variants: CaseVariants, maxPrefixes = 64): FoldedAddress {
  let prefixes = [''];
  let growing = true;
  let like = '';
  for (const c of address) {
    const lower = foldCase(c);
    const spellings = [...new Set([lower, ...(variants.get(lower) ?? [])].map(asciiLower))];
    like += spellings.length === 1 ? c.replace(/[%_\\]/, '\\$&') : '_';
    growing &&= prefixes.length * spellings.length <= maxPrefixes;
    if (growing) prefixes = prefixes.flatMap((p) => spellings.map((s) => p + s));
  }
  return { folded: foldCase(address), like, prefixes };
}
