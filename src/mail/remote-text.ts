/**
 * Text a remote party wrote (an SMTP reply, a host name, a DNS TXT record) made safe to store,
 * log and show: a remote may put any control character in it (an ESC sequence that recolours an
 * operator's terminal, a line break that forges a row, a NUL PostgreSQL refuses in text).
 */

/** Control characters (C0, DEL, C1). */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/** Each control character written out as \xNN, so the text stays readable and shows what was sent. */
export function readable(text: string): string {
  return text.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * `readable`, and at most `max` characters: a longer text ends in '…' where it was cut, never in
 * half a surrogate pair or half a \xNN.
 */
export function readableBounded(text: string, max: number): string {
  const plain = readable(text);
  if (plain.length <= max) return plain;
  const cut = plain.slice(0, max - 1).replace(/\\(?:x[0-9a-f]?)?$|[\ud800-\udbff]$/, '');
  return `${cut}…`;
}
