import { plannedMessage, TOKEN_PATTERN } from './smtp-fuzz-plan.ts';

/**
 * Checks a message the sink received from the daemon during the fuzz test against the data the
 * fuzz client sent for it (made again from the seed): CRLF line endings only; the Received field
 * Rookery prepends; then exactly the stored (dot-unstuffed) message, with nothing changed but a
 * Message-ID (and a Date when it had none) added at the end of its header. Written without the
 * daemon's own header code, so a mistake there cannot hide here.
 */

export interface DeliveredMessage {
  token: string;
  /** From the Message-ID Rookery added: <queue id@hostname>. */
  queueId: string;
}

const CRLF = Buffer.from('\r\n');

/** Returns what the message is, or throws saying what is wrong with it. */
export function checkDelivered(raw: Buffer, seed: number, hostname: string): DeliveredMessage {
  const bare = bareLineEnding(raw);
  if (bare >= 0) throw new Error(`bare CR or LF at byte ${bare}: ${excerpt(raw, bare)}`);
  const rest = raw.subarray(receivedFieldEnd(raw));
  const text = rest.toString('latin1');
  const found = TOKEN_PATTERN.exec(text);
  if (!found) throw new Error(`a message no fuzz sequence sent: ${excerpt(raw, 0)}`);
  const token = found[0];
  const message = plannedMessage(seed, Number(found[1]), Number(found[2]));
  if (!message) throw new Error(`${token}: no such message in its sequence`);
  const stored = message.stored;
  if (bareLineEnding(stored) >= 0) throw new Error(`${token}: accepted, though its data has a bare CR or LF`);

  // The header ends at the first empty line; data that starts with one has no header at all.
  const blank = stored.indexOf('\r\n\r\n');
  const headerEnd = stored.subarray(0, 2).equals(CRLF) ? 0 : blank >= 0 ? blank + 2 : stored.length;
  const header = stored.subarray(0, headerEnd);
  // Data without an empty line is all header: the delivered copy gets the empty line after it.
  const after = headerEnd === stored.length ? CRLF : stored.subarray(headerEnd);
  if (!rest.subarray(0, header.length).equals(header)) throw new Error(`${token}: header changed: ${firstDifference(rest, header)}`);
  const added = rest.subarray(header.length, rest.length - after.length).toString('latin1');
  if (!rest.subarray(rest.length - after.length).equals(after)) throw new Error(`${token}: body changed: ${excerpt(rest, header.length)}`);
  const hasDate = /(^|\r\n)Date:/i.test(header.toString('latin1'));
  const fields = new RegExp(`^Message-ID: <([0-9a-z]+)@${hostname.replace(/\./g, '\\.')}>\\r\\n${hasDate ? '' : 'Date: [^\\r\\n]+\\r\\n'}$`);
  const id = fields.exec(added);
  if (!id) throw new Error(`${token}: unexpected fields added to the header: ${JSON.stringify(added.slice(0, 300))}`);
  return { token, queueId: id[1]! };
}

/** Where the Received field Rookery prepends ends (after its last continuation line). */
function receivedFieldEnd(raw: Buffer): number {
  if (!raw.subarray(0, 10).equals(Buffer.from('Received: '))) throw new Error(`no Received field first: ${excerpt(raw, 0)}`);
  let end = raw.indexOf(CRLF);
  while (end >= 0 && (raw[end + 2] === 0x20 || raw[end + 2] === 0x09)) end = raw.indexOf(CRLF, end + 2);
  if (end < 0) throw new Error(`the Received field does not end: ${excerpt(raw, 0)}`);
  return end + 2;
}

/** The offset of the first CR not followed by LF or LF not preceded by CR; -1 when there is none. */
function bareLineEnding(bytes: Buffer): number {
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] === 0x0d && bytes[i + 1] !== 0x0a) return i;
    if (bytes[i] === 0x0a && bytes[i - 1] !== 0x0d) return i;
  }
  return -1;
}

function firstDifference(actual: Buffer, expected: Buffer): string {
  let i = 0;
  while (i < expected.length && actual[i] === expected[i]) i++;
  return `at byte ${i}, expected ${excerpt(expected, i)}, got ${excerpt(actual, i)}`;
}

function excerpt(bytes: Buffer, at: number): string {
  return JSON.stringify(bytes.subarray(Math.max(0, at - 40), at + 80).toString('latin1'));
}
