/**
 * The machine-readable part of a report (RFC 3464 message/delivery-status, RFC 5965
 * message/feedback-report): groups of header-style fields separated by blank lines. mailparser
 * has already undone the part's MIME (transfer encoding, charset); what is left is the field
 * syntax of RFC 5322 section 2.2, which is read here: folded lines joined, the name before the
 * first colon, case-insensitive. Bounded: a report from anyone on the internet may say anything.
 */

/** One group of fields: lower-case name -> its values in order (a field may repeat). */
export type FieldBlock = ReadonlyMap<string, readonly string[]>;

export interface FieldLimits {
  /** Most groups read (a DSN has one per recipient, after the per-message group). */
  maxBlocks: number;
  /** Most fields read over all groups. */
  maxFields: number;
}

/** Longest value kept; a longer one is cut (a Diagnostic-Code is a reply line or a few). */
const MAX_VALUE_LENGTH = 2000;
const FIELD = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:(.*)$/s;

/** The groups of `text`, each with at least one field; lines that are not fields are skipped. */
export function readFieldBlocks(text: string, limits: FieldLimits): FieldBlock[] {
  const blocks: FieldBlock[] = [];
  let fields = 0;
  for (const group of text.split(/\r?\n[ \t]*\r?\n/)) {
    if (blocks.length >= limits.maxBlocks || fields >= limits.maxFields) break;
    const block = new Map<string, string[]>();
    // A line starting with white space continues the field before it (folding).
    for (const line of group.replace(/\r?\n(?=[ \t])/g, '').split(/\r?\n/)) {
      const match = FIELD.exec(line);
      if (!match || fields >= limits.maxFields) continue;
      fields++;
      const name = match[1]!.toLowerCase();
      const value = match[2]!.replace(/\s+/g, ' ').trim().slice(0, MAX_VALUE_LENGTH);
      block.set(name, [...(block.get(name) ?? []), value]);
    }
    if (block.size > 0) blocks.push(block);
  }
  return blocks;
}

/** The first value of a field, or null. */
export function fieldValue(block: FieldBlock | undefined, name: string): string | null {
  return block?.get(name)?.[0] ?? null;
}

/**
 * A typed field ("rfc822; user@example.com", "smtp; 550 5.1.1 ...", "dns; mx.example.com"):
 * its type in lower case and the value after the semicolon. A value without a type (some MTAs
 * omit it) has the type ''.
 */
export function typedValue(value: string | null): { type: string; value: string } | null {
  if (value === null) return null;
  const semicolon = value.indexOf(';');
  if (semicolon < 0 || !/^[A-Za-z0-9-]+$/.test(value.slice(0, semicolon).trim())) return { type: '', value: value.trim() };
  return { type: value.slice(0, semicolon).trim().toLowerCase(), value: value.slice(semicolon + 1).trim() };
}

/**
 * An address from a typed field or a bare one: "rfc822; <a@b>" -> "a@b". The "utf-8" type (RFC
 * 6533) may write a character as \x{HEX} (its xtext form, the only one a message/delivery-status
 * part may carry); it is read back to the character.
 */
export function addressValue(value: string | null): string | null {
  const typed = typedValue(value);
  if (!typed) return null;
  const written = typed.value.replace(/^<(.*)>$/, '$1').trim();
  const address = typed.type === 'utf-8' ? written.replace(/\\x\{([0-9A-Fa-f]{1,6})\}/g, (escape, hex: string) => utf8Character(parseInt(hex, 16)) ?? escape) : written;
  return address.includes('@') ? address : null;
}

/** The character of a code point an address may hold: none for controls, surrogates and beyond Unicode. */
function utf8Character(codePoint: number): string | null {
  const valid = codePoint > 0x1f && codePoint !== 0x7f && codePoint <= 0x10ffff && (codePoint < 0xd800 || codePoint > 0xdfff);
  return valid ? String.fromCodePoint(codePoint) : null;
}
