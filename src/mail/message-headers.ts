/**
 * Header-block edits on a wire-form message (CRLF). Only the header block is touched;
 * the body bytes are passed through untouched.
 */

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * Splits at the blank line; a message with no body is all header, and one that starts with the
 * blank line has no header (the body keeps the blank line, as it does after a header).
 */
export function splitHeader(message: Buffer): { header: string; body: Buffer } {
  if (message[0] === 0x0d && message[1] === 0x0a) return { header: '', body: message };
  const end = message.indexOf(HEADER_END);
  if (end < 0) return { header: message.toString('latin1'), body: Buffer.alloc(0) };
  return { header: message.subarray(0, end + 2).toString('latin1'), body: message.subarray(end + 2) };
}

/** True when the header block has a field with this name (case-insensitive, not a continuation). */
export function hasHeader(header: string, name: string): boolean {
  const re = new RegExp(`(^|\\r\\n)${name.replace(/[-]/g, '\\-')}[ \\t]*:`, 'i');
  return re.test(header);
}

/** Value of the first field with this name, unfolded and trimmed, or null. */
export function headerValue(header: string, name: string): string | null {
  const match = fieldPattern(name, 'i').exec(header);
  return match ? unfold(match[1]!) : null;
}

/** Values of every field with this name, in order, unfolded and trimmed. */
export function headerValues(header: string, name: string): string[] {
  return [...header.matchAll(fieldPattern(name, 'gi'))].map((match) => unfold(match[1]!));
}

/** A field with this name (its name ends at optional blanks and a colon), with its continuation lines. */
function fieldPattern(name: string, flags: string): RegExp {
  return new RegExp(`(?:^|\\r\\n)${name.replace(/[-]/g, '\\-')}[ \\t]*:([^\\r]*(?:\\r\\n[ \\t][^\\r]*)*)`, flags);
}

function unfold(value: string): string {
  return value.replace(/\r\n/g, '').trim();
}

/**
 * Prepends `prepend` fields (e.g. Received) and appends `append` fields at the end of the header
 * block, after removing every field named in `remove` (with its continuation lines). Each field
 * is given without its trailing CRLF.
 */
export function withHeaders(message: Buffer, prepend: string[], append: string[], remove: string[] = []): Buffer {
  const split = splitHeader(message);
  const { body } = split;
  const header = remove.length ? withoutFields(split.header, remove) : split.header;
  const headerBytes = Buffer.from(header, 'latin1');
  const parts: Buffer[] = [];
  for (const field of prepend) parts.push(Buffer.from(field, 'utf8'), CRLF);
  parts.push(headerBytes);
  if (headerBytes.length && !header.endsWith('\r\n')) parts.push(CRLF);
  for (const field of append) parts.push(Buffer.from(field, 'utf8'), CRLF);
  if (body.length) parts.push(body);
  else parts.push(CRLF);
  return Buffer.concat(parts);
}

/** RFC 5322 date-time, e.g. "Sun, 22 Nov 2026 10:00:00 +0000". */
export function rfc5322Date(ms: number): string {
  return new Date(ms).toUTCString().replace('GMT', '+0000');
}

/** The header block without the named fields (each line of a folded field goes with it). */
function withoutFields(header: string, names: string[]): string {
  const drop = new Set(names.map((n) => n.toLowerCase()));
  const kept: string[] = [];
  let dropping = false;
  for (const line of header.split('\r\n')) {
    if (line === '') continue;
    const continuation = line.startsWith(' ') || line.startsWith('\t');
    if (!continuation) dropping = drop.has(line.slice(0, line.indexOf(':')).trim().toLowerCase());
    if (!dropping) kept.push(line);
  }
  return kept.length ? kept.join('\r\n') + '\r\n' : '';
}
