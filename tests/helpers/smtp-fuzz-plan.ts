import { itemSeed, seededRandom, type Random } from './fuzz-random.ts';

/**
 * The SMTP fuzz test's sequences: what one client connection sends, made from a seed and the
 * sequence's index alone, so any sequence can be made again (to check a delivered message
 * against it, or to replay a failure). Random and mutated commands and message data: bare CR
 * and LF, NULs, 8-bit and binary bytes, huge lines, dot-stuffing done wrong on purpose,
 * pipelining, STARTTLS and AUTH in odd states, data split across writes, connections dropped
 * mid-message, garbage at the end.
 *
 * Every step is planned so its replies can be counted: each command line gets one reply (as
 * smtp-server answers), message data is sent only after a 354, and nothing but a message step
 * sends DATA. Whatever cannot be counted goes in the sequence's end, after which the client
 * only reads until the server closes.
 */

export interface FuzzMessage {
  /** Unique in the run, written once in the message; the delivered copy is found by it. */
  token: string;
  /** What follows the 354, split into writes: the data as sent (dot-stuffed, or not where the test says) and the final ".\r\n". */
  writes: Buffer[];
  /** What the server must take from those bytes: the escape dots removed (see unstuffed()). */
  stored: Buffer;
  /** Cut the connection after this many bytes of the writes, in the middle of the data. */
  abortAfter: number | null;
}

export type FuzzStep =
  /** Command lines, each answered once; pipelined ones are written at once. */
  | { kind: 'commands'; lines: Buffer[]; pipelined: boolean }
  /** MAIL, RCPT and DATA lines, then (after a 354) the message. */
  | { kind: 'message'; envelope: Buffer[]; pipelined: boolean; message: FuzzMessage }
  /** STARTTLS; after a 220, a TLS handshake (upgrade) or garbage (the sequence then ends). */
  | { kind: 'starttls'; upgrade: boolean };

export type FuzzEnd = { kind: 'quit' } | { kind: 'hang-up' } | { kind: 'abort' } | { kind: 'garbage'; bytes: Buffer };

export interface FuzzSequence {
  index: number;
  listener: 'plain' | 'starttls';
  steps: FuzzStep[];
  end: FuzzEnd;
}

export const TOKEN_PATTERN = /fuzz-token-(\d+)-(\d+)/;

const CRLF = '\r\n';
const line = (text: string | Buffer) => Buffer.concat([Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1'), Buffer.from(CRLF)]);
/** Bytes that never make a line end, a message end or a DATA command out of garbage. */
const noLineEnd = (b: number) => b === 0x0d || b === 0x0a;

export function planSequence(seed: number, index: number): FuzzSequence {
  const r = seededRandom(itemSeed(seed, index));
  const listener = r.chance(0.25) ? 'starttls' : 'plain';
  const steps: FuzzStep[] = [];
  if (r.chance(0.9)) steps.push({ kind: 'commands', lines: [line(greetingCommand(r))], pipelined: false });
  let messages = 0;
  for (let n = r.int(0, 5); n > 0; n--) {
    const kind = r.weighted({ message: 5, command: 3, pipelined: 1, starttls: 0.6 });
    if (kind === 'message') steps.push({ kind, envelope: envelope(r), pipelined: r.chance(0.4), message: fuzzMessage(r, `fuzz-token-${index}-${messages++}`) });
    else if (kind === 'starttls') steps.push({ kind, upgrade: r.chance(0.7) });
    else steps.push({ kind: 'commands', lines: Array.from({ length: kind === 'pipelined' ? r.int(2, 8) : 1 }, () => line(command(r))), pipelined: kind === 'pipelined' });
  }
  const end = r.weighted({ quit: 45, 'hang-up': 20, abort: 15, garbage: 20 });
  return { index, listener, steps, end: end === 'garbage' ? { kind: end, bytes: garbage(r) } : { kind: end } };
}

/** The message `n` of a sequence, made again from the seed. */
export function plannedMessage(seed: number, index: number, n: number): FuzzMessage | null {
  let seen = 0;
  for (const step of planSequence(seed, index).steps) {
    if (step.kind !== 'message') continue;
    if (seen++ === n) return step.message;
  }
  return null;
}

function greetingCommand(r: Random): string | Buffer {
  return r.pick<string | Buffer>([
    'EHLO client.fuzz.test',
    'EHLO client.fuzz.test',
    'HELO client.fuzz.test',
    'ehlo [127.0.0.1]',
    'EHLO',
    'LHLO client.fuzz.test',
    `EHLO ${'x'.repeat(r.int(200, 600))}`,
    Buffer.concat([Buffer.from('EHLO '), r.bytes(r.int(1, 40), noLineEnd)]),
    'EHLO <script>alert(1)</script>',
  ]);
}

function address(r: Random, domain: string): string {
  return r.pick([
    `user${r.int(0, 9)}@${domain}`,
    `"quoted local"@${domain}`,
    `${'l'.repeat(r.int(60, 300))}@${domain}`,
    `caf\u00e9@${domain}`,
    `user@${domain}.`,
    'no-domain',
    `user@[127.0.0.1]`,
    `a.b+tag@sub.${domain}`,
  ]);
}

function envelope(r: Random): Buffer[] {
  const from = r.weighted({ plain: 8, null: 1, params: 2, odd: 2 });
  const sender =
    from === 'plain'
      ? 'MAIL FROM:<app@sender.test>'
      : from === 'null'
        ? 'MAIL FROM:<>'
        : from === 'params'
          ? r.pick(['MAIL FROM:<app@sender.test> SIZE=1000', 'MAIL FROM:<app@sender.test> BODY=8BITMIME', 'MAIL FROM:<app@sender.test> SIZE=999999999', 'MAIL FROM:<app@sender.test> SMTPUTF8', 'MAIL FROM:<app@sender.test> FOO=BAR'])
          : r.pick([`MAIL FROM:<${address(r, 'sender.test')}>`, 'MAIL FROM: app@sender.test', 'mail from:<app@sender.test>', 'MAIL FROM:<app\x01@sender.test>', 'MAIL TO:<app@sender.test>']);
  const recipients = Array.from({ length: r.chance(0.06) ? 0 : r.weighted({ one: 12, two: 3, three: 2 }) === 'one' ? 1 : r.int(2, 3) }, () =>
    r.chance(0.85) ? `RCPT TO:<user${r.int(0, 20)}@dest.test>` : r.pick([`RCPT TO:<${address(r, 'dest.test')}>`, 'RCPT TO:user@dest.test', 'RCPT TO:<>', 'RCPT TO:<postmaster>', 'RCPT TO:<user@dest.test>\x00']),
  );
  return [sender, ...recipients, 'DATA'].map((text) => line(text));
}

function command(r: Random): string | Buffer {
  switch (r.weighted({ valid: 4, auth: 2, junk: 3, long: 1, binary: 1 })) {
    case 'valid':
      return r.pick([
        'NOOP',
        'RSET',
        'HELP',
        'VRFY user@dest.test',
        'EXPN list',
        'EHLO again.fuzz.test',
        'HELO again.fuzz.test',
        'MAIL FROM:<app@sender.test>',
        'RCPT TO:<user@dest.test>',
        'BDAT 10 LAST',
        'ETRN dest.test',
        'NOOP with args',
        'QUIT ',
      ]);
    case 'auth':
      return r.pick([
        'AUTH PLAIN',
        `AUTH PLAIN ${Buffer.from('\0user\0password').toString('base64')}`,
        'AUTH PLAIN =',
        'AUTH LOGIN',
        `AUTH LOGIN ${Buffer.from('user').toString('base64')}`,
        'AUTH CRAM-MD5',
        'AUTH XOAUTH2 dGVzdA==',
        '*',
        Buffer.from('not base64 !!').toString('latin1'),
        'dXNlcg==',
      ]);
    case 'junk':
      return r.pick(['', ' ', 'FOO', 'MAIL', 'RCPT', 'mail from', 'RCPT TO:', ':', 'HELO\tx', 'NOOP\0', '\0\0\0', '\x1b[31m', 'GET / HTTP/1.1', 'Host: x']);
    case 'long':
      return 'NOOP ' + 'A'.repeat(r.int(3000, 20_000));
    default:
      return r.bytes(r.int(1, 200), noLineEnd);
  }
}

/** A message: header fields (or none), body lines, some mutated; the data as sent and as it must be stored. */
function fuzzMessage(r: Random, token: string): FuzzMessage {
  const shape = r.weighted({ normal: 90, headerless: 5, allHeader: 5 });
  const header: Buffer[] = shape === 'headerless' ? [] : headerFields(r, token);
  const body: Buffer[] = shape === 'allHeader' ? [] : bodyLines(r, shape === 'headerless' ? token : null);
  const lines = shape === 'allHeader' ? header : [...header, Buffer.alloc(0), ...body];
  let content: Buffer = Buffer.concat(lines.map((l) => line(l)));
  // Line-ending mutations: the server must refuse these messages whole.
  if (r.chance(0.04)) content = insertAt(r, content, '\n');
  if (r.chance(0.04)) content = insertAt(r, content, '\r');
  const wire = dotStuffed(r, content);
  const all = Buffer.concat([wire, Buffer.from('.\r\n')]);
  return { token, writes: splitWrites(r, all), stored: unstuffed(wire), abortAfter: r.chance(0.04) ? r.int(0, wire.length) : null };
}

function headerFields(r: Random, token: string): Buffer[] {
  const fields: Array<string | Buffer> = [`X-Fuzz-Token: ${token}`];
  fields.push(r.pick(['From: <app@sender.test>', 'From: "App" <app@sender.test>', 'From: =?utf-8?q?caf=C3=A9?= <app@sender.test>', 'From: Caf\u00e9 <app@sender.test>']));
  if (r.chance(0.03)) fields.push('From: <other@sender.test>');
  if (r.chance(0.8)) fields.push(`To: <user${r.int(0, 20)}@dest.test>`);
  if (r.chance(0.5)) fields.push(`Date: ${new Date(Date.UTC(2026, 0, 1 + r.int(0, 300))).toUTCString()}`);
  if (r.chance(0.8)) fields.push(`Subject: ${r.pick(['hello', 'caf\u00e9 \u2615', '=?utf-8?b?w6k=?=', '', '.dot', 'QUIT'])}`);
  if (r.chance(0.2)) fields.push('Subject-Folded: first part', '\tsecond part', '  third part');
  if (r.chance(0.1)) fields.push(`X-Long: ${'h'.repeat(r.int(900, 5000))}`);
  if (r.chance(0.1)) fields.push(Buffer.concat([Buffer.from('X-Binary: '), r.bytes(r.int(1, 60), noLineEnd)]));
  if (r.chance(0.5)) fields.push('MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8');
  return fields.map((f) => (Buffer.isBuffer(f) ? f : Buffer.from(f, 'utf8')));
}

function bodyLines(r: Random, token: string | null): Buffer[] {
  const lines: Buffer[] = token ? [Buffer.from(token)] : [];
  for (let n = r.int(0, 12); n > 0; n--) {
    const kind = r.weighted({ text: 10, dots: 4, smtp: 2, empty: 2, eight: 2, nul: 1, binary: 1, huge: 0.3 });
    if (kind === 'text') lines.push(Buffer.from(r.pick(['Hello there.', 'The quick brown fox jumps over the lazy dog.', '   indented', 'trailing space ', 'From the start', '>quoted'])));
    else if (kind === 'dots') lines.push(Buffer.from(r.pick(['.', '..', '...', '.leading dot', '. ', '.\t'])));
    else if (kind === 'smtp') lines.push(Buffer.from(r.pick(['QUIT', 'RSET', 'MAIL FROM:<x@y.test>', 'DATA', '250 OK', 'STARTTLS'])));
    else if (kind === 'empty') lines.push(Buffer.alloc(0));
    else if (kind === 'eight') lines.push(Buffer.from(r.pick(['caf\u00e9 \u2615', '\u00ff\u00fe', 'na\u00efve r\u00e9sum\u00e9'])));
    else if (kind === 'nul') lines.push(Buffer.from('nul\0in\0the\0middle'));
    else if (kind === 'binary') lines.push(r.bytes(r.int(1, 300), noLineEnd));
    else lines.push(Buffer.alloc(r.int(1000, 100_000), 'z'));
  }
  return lines;
}

/** Inserts `text` anywhere before the final CRLF, which must stay: the ".\r\n" after it ends the data. */
function insertAt(r: Random, content: Buffer, text: string): Buffer {
  const at = r.int(0, content.length - 2);
  return Buffer.concat([content.subarray(0, at), Buffer.from(text, 'latin1'), content.subarray(at)]);
}

/**
 * Adds a dot to each CRLF line that starts with one, as a client must; now and then leaves it
 * off on purpose ("." alone always gets it: it would end the data).
 */
function dotStuffed(r: Random, content: Buffer): Buffer {
  const lines = content.toString('latin1').split(CRLF);
  return Buffer.from(lines.map((l) => (l.startsWith('.') && (l === '.' || r.chance(0.9)) ? `.${l}` : l)).join(CRLF), 'latin1');
}

/**
 * What the server stores from dot-stuffed data: a line's leading dot is removed when another dot
 * follows it. A line with one leading dot and other text after it is kept as sent (smtp-server
 * reads it so; RFC 5321 4.5.2 would delete the dot): only a client that does not dot-stuff sends
 * one, and what it meant is the line as written.
 */
function unstuffed(wire: Buffer): Buffer {
  return Buffer.from(
    wire
      .toString('latin1')
      .split(CRLF)
      .map((l) => (l.startsWith('..') ? l.slice(1) : l))
      .join(CRLF),
    'latin1',
  );
}

/** The data in one to four writes; sometimes split inside the final CRLF.CRLF. */
function splitWrites(r: Random, all: Buffer): Buffer[] {
  const cuts = new Set<number>();
  for (let n = r.int(0, 3); n > 0; n--) cuts.add(r.int(1, all.length - 1));
  if (r.chance(0.1)) cuts.add(all.length - r.int(1, 4));
  const points = [0, ...[...cuts].filter((c) => c > 0 && c < all.length).sort((a, b) => a - b), all.length];
  return points.slice(1).map((end, i) => all.subarray(points[i], end));
}

/** Whatever a broken or hostile client might send last; never a DATA command, so it never opens a message. */
function garbage(r: Random): Buffer {
  const parts: Buffer[] = [];
  for (let n = r.int(1, 4); n > 0; n--) {
    const kind = r.weighted({ binary: 3, long: 1, pipelined: 2, tls: 1, endings: 1 });
    if (kind === 'binary') parts.push(r.bytes(r.int(1, 3000)));
    else if (kind === 'long') parts.push(line('X'.repeat(r.int(4097, 40_000))));
    else if (kind === 'pipelined') parts.push(...Array.from({ length: r.int(2, 30) }, () => line(command(r))));
    else if (kind === 'tls') parts.push(line('STARTTLS'), r.bytes(r.int(1, 500)));
    else parts.push(Buffer.from(r.pick(['\r\r\r', '\n\n\n', '\r\n\r\n', '\0\r\n', '.\r\n', '\r\n.\r\n'])));
  }
  return Buffer.from(Buffer.concat(parts).toString('latin1').replace(/DATA|BDAT/gi, 'NOOP'), 'latin1');
}
