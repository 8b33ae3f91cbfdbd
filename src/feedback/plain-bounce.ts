import type { BounceRule } from '../engine/bounce-rules.ts';
import { bounceVerdict, type BounceVerdict } from './bounce-verdict.ts';
import type { ReportMessage } from './report-message.ts';

/**
 * Bounces that are not RFC 3464 DSNs: the plain-text notices many MTAs still send (qmail's
 * "I'm afraid I wasn't able to deliver", Exim's "The following address(es) failed", old
 * Sendmail's "permanent fatal errors"). The explanation is read up to where the returned copy
 * of the message starts; the SMTP reply it quotes (basic and enhanced code, or an enhanced code
 * alone as qmail's "#5.1.1") is classified with the bounce rules (bounce-verdict.ts), and
 * without one, its wording is. A message that names no reply and has no bounce wording (an
 * out-of-office reply to the return path, a person answering) is not a bounce: null.
 */

export interface PlainBounce extends BounceVerdict {
  /** Addresses the notice lists as failed (lines holding an address only), in order. */
  recipients: string[];
}

/** Where the copy of the returned message starts (the explanation ends before it). */
const COPY_STARTS = [
  /^-{2,}.*(copy of the message|below this line|original message|message follows|returned message|headers? (of|follow))/i,
  /^\s*(original message follows|----- ?original message)/i,
  /^(Return-Path|Received|DKIM-Signature):/i,
];
/** A quoted reply: at the start of a line or after "said:", "reason:" and the like. */
const REPLY = /(?:^|said:?|error:?|reason:|response:|\()\s*([45]\d\d)(?:[ -]+#?([45]\.\d{1,3}\.\d{1,3}))?(?=[\s-]|$)[ -]?(.*)$/i;
/** An enhanced code alone (qmail: "(#5.1.1)"), not the start of an IP address. */
const ENHANCED = /(?:^|[\s(#])([45]\.\d{1,3}\.\d{1,3})(?=[\s),;:]|\.(?!\d)|$)/;
const ADDRESS_LINE = /^\s*<?([^\s<>@"]+@[^\s<>"]+?)>?:?\s*$/;
const BOUNCE_WORDING =
  /undeliver|could not be delivered|couldn'?t be delivered|delivery (status notification|failure|has failed|failed|problem)|returned mail|failure notice|mail delivery (failed|system|subsystem)|non-?delivery|permanent(ly)? (fatal )?error|not yet been delivered|wasn'?t able to deliver|address(es)? failed|user unknown|mailbox unavailable/i;
const DELAY_WORDING = /not yet been delivered|delivery (is |has been )?delayed|delayed mail|still (being )?retr|will (keep|continue) (trying|to try|retrying)|temporary (failure|error|problem)|warning: message/i;
const PERMANENT_WORDING = /permanent(ly)? (fatal )?error|given up|giving up|failed permanently|could not be delivered|address(es)? failed/i;
const MAX_RECIPIENTS = 10;
const MAX_WORDING = 2000;

export function parsePlainBounce(message: Pick<ReportMessage, 'subject' | 'text'>, rules: readonly BounceRule[]): PlainBounce | null {
  const lines = explanation(message.text);
  const reply = quotedReply(lines) ?? enhancedAlone(lines);
  const wording = `${message.subject}\n${lines.join('\n')}`;
  if (!reply && !BOUNCE_WORDING.test(wording)) return null;
  const temporary = reply?.enhanced?.startsWith('4') || reply?.code?.toString().startsWith('4');
  const delayed = temporary || (DELAY_WORDING.test(wording) && !PERMANENT_WORDING.test(wording));
  // Without a quoted reply, the notice's own wording is what the bounce rules can read.
  const verdict = bounceVerdict(
    { code: reply?.code ?? null, enhanced: reply?.enhanced ?? null, text: reply?.text ?? lines.join(' ').slice(0, MAX_WORDING), delayed },
    rules,
  );
  const recipients = lines.flatMap((line) => ADDRESS_LINE.exec(line)?.[1] ?? []).slice(0, MAX_RECIPIENTS);
  return { ...verdict, recipients };
}

/** The notice's own lines, up to the returned copy. */
function explanation(text: string): string[] {
  const lines = text.split(/\r?\n/);
  const end = lines.findIndex((line) => COPY_STARTS.some((re) => re.test(line)));
  return (end < 0 ? lines : lines.slice(0, end)).map((line) => line.trimEnd());
}

interface QuotedReply {
  code: number | null;
  enhanced: string | null;
  text: string;
}

/** The first quoted reply, with the lines of a multi-line reply ("550-...", "550 ...") that follow it. */
function quotedReply(lines: readonly string[]): QuotedReply | null {
  for (let i = 0; i < lines.length; i++) {
    const match = REPLY.exec(lines[i]!.trim());
    if (!match) continue;
    const code = Number(match[1]);
    const parts = [match[3]!.trim()];
    for (let j = i + 1; j < lines.length; j++) {
      const next = new RegExp(`^\\s*${code}[ -](?:#?[45]\\.\\d{1,3}\\.\\d{1,3}\\s*)?(.*)$`).exec(lines[j]!);
      if (!next) break;
      parts.push(next[1]!.trim());
    }
    return { code, enhanced: match[2] ?? null, text: withoutStrayParenthesis(parts.filter(Boolean).join(' ')) };
  }
  return null;
}

/** The first line with an enhanced code alone: the code, and the line's wording without it. */
function enhancedAlone(lines: readonly string[]): QuotedReply | null {
  for (const line of lines) {
    const match = ENHANCED.exec(line);
    if (match) return { code: null, enhanced: match[1]!, text: line.replace(/\(?#?[45]\.\d{1,3}\.\d{1,3}\)?/, '').trim() };
  }
  return null;
}

/** "(reason: 552 5.2.2 Mailbox full)": the reply was read from inside the parentheses. */
function withoutStrayParenthesis(text: string): string {
  const open = text.split('(').length;
  const close = text.split(')').length;
  return close > open && text.endsWith(')') ? text.slice(0, -1).trimEnd() : text;
}
