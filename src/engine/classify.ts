import type { BounceClass, DeliveryOutcome, DeliveryStage, Disposition } from '../mail/delivery-outcome.ts';
import { readable } from '../mail/remote-text.ts';
import type { BounceRule } from './bounce-rules.ts';

/**
 * Turns SMTP replies and local errors into DeliveryOutcomes. What a reply means (its bounce
 * class, and for a few codes its disposition) comes from an ordered rule table, the bounce
 * rules (config/bounce-rules.yaml and the operator's), so the rules can be read, tested and
 * extended as data.
 */

export interface ReplyContext {
  stage: DeliveryStage;
  /** The next hop that answered; null when none was reached. */
  remoteHost: string | null;
  /** Source address of the attempt; null for the OS default. */
  egressIp: string | null;
}

export interface Reply extends ReplyContext {
  /** Basic reply code, e.g. 550. */
  code: number;
  /** The reply text; may be the whole reply ("550 5.1.1 ...", multi-line) or only what follows the code. */
  text: string;
}

const ENHANCED_AT_START = /^([245])\.(\d{1,3})\.(\d{1,3})(?=$|\s)/;
const REPLY_LINE_PREFIX = /^(\d{3})([ -]|$)/;

export interface ParsedReply {
  code: number;
  /** The remote's enhanced code, or null when it gave none (or one of the wrong class). */
  enhanced: string | null;
  /** The reply text after the basic code (enhanced code kept), lines joined with a space. */
  text: string;
}

/**
 * Parses a reply as received ("250 2.0.0 Ok", or multi-line "550-5.7.1 a\r\n550 5.7.1 b").
 * Returns null when it does not start with a reply code.
 */
export function parseReply(raw: string): ParsedReply | null {
  const match = REPLY_LINE_PREFIX.exec(raw.trimStart());
  if (!match) return null;
  const code = Number(match[1]);
  return { code, ...splitText(code, raw) };
}

/** Strips the basic code from each line, joins the lines and reads the enhanced code. */
function splitText(code: number, raw: string): { enhanced: string | null; text: string } {
  const lines = raw
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .map((line) => {
      const m = REPLY_LINE_PREFIX.exec(line);
      return m && Number(m[1]) === code ? line.slice(m[0].length).trim() : line;
    });
  // Multi-line replies repeat the enhanced code on each line; keep it once.
  const first = lines[0] ?? '';
  const enhancedMatch = ENHANCED_AT_START.exec(first);
  const enhanced = enhancedMatch && enhancedMatch[1] === String(code).charAt(0) ? enhancedMatch[0] : null;
  const rest = enhanced
    ? lines.map((line, i) => (i > 0 && line.startsWith(enhanced) ? line.slice(enhanced.length).trim() : line))
    : lines;
  return { enhanced, text: rest.join(' ') };
}

function dispositionOfCode(code: number): Disposition {
  if (code >= 200 && code < 300) return 'delivered';
  if (code >= 500 && code < 600) return 'permanent';
  // 4xx, and anything unexpected in this position (1xx, 3xx, out of range): try again later.
  return 'transient';
}

function derivedEnhanced(disposition: Disposition): string {
  return disposition === 'delivered' ? '2.0.0' : disposition === 'permanent' ? '5.0.0' : '4.0.0';
}

function matches(rule: BounceRule, code: number, enhanced: string, text: string, disposition: Disposition): boolean {
  if (rule.codes && !rule.codes.includes(code)) return false;
  if (rule.when && rule.when !== disposition) return false;
  if (rule.enhanced && !rule.enhanced.test(enhanced)) return false;
  if (rule.text && !rule.text.test(text)) return false;
  return true;
}

/** Classifies an SMTP reply: 2xx delivered, 4xx transient, 5xx permanent, with a bounce class from the rules. */
export function classifyReply(reply: Reply, rules: readonly BounceRule[]): DeliveryOutcome {
  const { code, stage, remoteHost, egressIp } = reply;
  const { enhanced: given, text } = splitText(code, reply.text);
  let disposition = dispositionOfCode(code);
  const enhanced = given ?? derivedEnhanced(disposition);
  // The human text without a leading enhanced code, so wording rules do not see digits.
  const wording = given ? text.slice(given.length).trim() : text;
  let bounceClass: BounceClass = 'none';
  if (disposition !== 'delivered') {
    const rule = rules.find((r) => matches(r, code, enhanced, wording, disposition));
    // A 1xx / 3xx / out-of-range code where a final reply belongs is the server breaking protocol.
    bounceClass = rule?.bounceClass ?? (code >= 400 && code < 600 ? 'other' : 'protocol');
    if (rule?.disposition) disposition = rule.disposition;
  }
  return { disposition, code, enhanced, response: readable(text), stage, bounceClass, remoteHost: remoteHost && readable(remoteHost), egressIp };
}

/** The shape of errors raised by nodemailer's SMTPConnection and by Node sockets. */
interface ErrorFields {
  message?: unknown;
  code?: unknown;
  originalCode?: unknown;
  errno?: unknown;
  responseCode?: unknown;
  response?: unknown;
  command?: unknown;
  timeoutType?: unknown;
  address?: unknown;
  port?: unknown;
}

/** Maps the SMTP command nodemailer names in an error to the stage it belongs to. */
const STAGE_OF_COMMAND: Record<string, DeliveryStage> = {
  EHLO: 'ehlo',
  HELO: 'ehlo',
  LHLO: 'ehlo',
  STARTTLS: 'starttls',
  'MAIL FROM': 'mail',
  'RCPT TO': 'rcpt',
};

const STAGE_OF_TIMEOUT: Record<string, DeliveryStage> = {
  CONNECT_TIMEOUT: 'connect',
  GREETING_TIMEOUT: 'greeting',
  UPGRADE_TIMEOUT: 'starttls',
};

function stageOf(fields: ErrorFields, fallback: DeliveryStage): DeliveryStage {
  const command = typeof fields.command === 'string' ? fields.command : '';
  if (command === 'DATA') return fields.code === 'EMESSAGE' ? 'dot' : 'data';
  if (STAGE_OF_COMMAND[command]) return STAGE_OF_COMMAND[command];
  if (typeof fields.timeoutType === 'string' && STAGE_OF_TIMEOUT[fields.timeoutType]) return STAGE_OF_TIMEOUT[fields.timeoutType]!;
  if (fields.code === 'ETLS') return 'starttls';
  return fallback;
}

/** A local failure: how it is reported. Ordered; the first entry whose code matches wins. */
interface ErrorRule {
  codes: readonly string[];
  disposition: Disposition;
  enhanced: string;
  bounceClass: BounceClass;
  describe: (ctx: ReplyContext, fields: ErrorFields) => string;
}

const hostLabel = (ctx: ReplyContext) => ctx.remoteHost ?? 'the remote host';

const ERROR_RULES: readonly ErrorRule[] = [
  {
    codes: ['EADDRNOTAVAIL'],
    disposition: 'transient',
    enhanced: '4.4.0',
    bounceClass: 'egress-unavailable',
    describe: (ctx) =>
      `egress address ${ctx.egressIp ?? '(default)'} is not configured on this host (EADDRNOTAVAIL): cannot bind the outbound connection`,
  },
  {
    codes: ['ECONNREFUSED'],
    disposition: 'transient',
    enhanced: '4.4.1',
    bounceClass: 'connection',
    describe: (ctx) => `connection refused by ${hostLabel(ctx)}`,
  },
  {
    codes: ['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN'],
    disposition: 'transient',
    enhanced: '4.4.1',
    bounceClass: 'connection',
    describe: (ctx, f) => `${hostLabel(ctx)} is unreachable (${String(f.originalCode ?? f.code)})`,
  },
  {
    codes: ['ETIMEDOUT'],
    disposition: 'transient',
    enhanced: '4.4.2',
    bounceClass: 'connection',
    describe: (ctx, f) => `${timeoutWhat(f)} timed out with ${hostLabel(ctx)}`,
  },
  {
    codes: ['ECONNRESET', 'EPIPE', 'ECONNECTION', 'ESOCKET', 'ECONNABORTED'],
    disposition: 'transient',
    enhanced: '4.4.2',
    bounceClass: 'connection',
    describe: (ctx, f) => `connection with ${hostLabel(ctx)} lost: ${messageOf(f)}`,
  },
  {
    codes: ['ETLS'],
    disposition: 'transient',
    enhanced: '4.7.5',
    bounceClass: 'connection',
    describe: (ctx, f) => `TLS with ${hostLabel(ctx)} failed: ${messageOf(f)}`,
  },
  {
    codes: ['ENOTFOUND', 'EDNS', 'EAI_AGAIN', 'ENODATA', 'ESERVFAIL', 'ETIMEOUT'],
    disposition: 'transient',
    enhanced: '4.4.3',
    bounceClass: 'dns',
    describe: (ctx, f) => `cannot resolve ${hostLabel(ctx)}: ${messageOf(f)}`,
  },
  {
    codes: ['EPROTOCOL'],
    disposition: 'transient',
    enhanced: '4.5.0',
    bounceClass: 'protocol',
    describe: (ctx, f) => `protocol error with ${hostLabel(ctx)}: ${messageOf(f)}`,
  },
  {
    // Invalid envelope addresses (nodemailer refuses them before sending): retrying cannot help.
    codes: ['EENVELOPE'],
    disposition: 'permanent',
    enhanced: '5.1.3',
    bounceClass: 'unknown-user',
    describe: (_ctx, f) => messageOf(f),
  },
];

function messageOf(fields: ErrorFields): string {
  return typeof fields.message === 'string' && fields.message ? fields.message : 'unknown error';
}

function timeoutWhat(fields: ErrorFields): string {
  switch (fields.timeoutType) {
    case 'CONNECT_TIMEOUT':
      return 'connection';
    case 'GREETING_TIMEOUT':
      return 'waiting for the greeting';
    case 'UPGRADE_TIMEOUT':
      return 'TLS handshake';
    default:
      return 'waiting for a reply';
  }
}

/**
 * Classifies an error from a delivery attempt. Errors that carry a server reply
 * (nodemailer's `responseCode` / `response`) are classified by the reply; socket, DNS, TLS and
 * timeout errors are transient with bounce class 'connection' (or 'dns', 'protocol').
 */
export function classifyError(err: unknown, ctx: ReplyContext, rules: readonly BounceRule[]): DeliveryOutcome {
  const fields: ErrorFields = typeof err === 'object' && err !== null ? (err as ErrorFields) : { message: String(err) };
  const stage = stageOf(fields, ctx.stage);
  const response = typeof fields.response === 'string' ? fields.response : '';
  const responseCode = typeof fields.responseCode === 'number' ? fields.responseCode : parseReply(response)?.code;
  if (responseCode && response) {
    return classifyReply({ code: responseCode, text: response, stage, remoteHost: ctx.remoteHost, egressIp: ctx.egressIp }, rules);
  }

  // The server's size limit (SIZE in EHLO), checked before sending: the message will never fit.
  if (fields.code === 'EMESSAGE' && /size larger than allowed/i.test(messageOf(fields))) {
    return outcome('permanent', '5.3.4', 'message-rejected', `message exceeds the size limit of ${hostLabel(ctx)}: ${messageOf(fields)}`, stage, ctx);
  }

  // nodemailer replaces a socket error's code with its own (ESOCKET, ECONNECTION) and keeps the original.
  const codes = [fields.originalCode, fields.code].filter((c): c is string => typeof c === 'string');
  for (const rule of ERROR_RULES) {
    if (codes.some((c) => rule.codes.includes(c))) {
      return outcome(rule.disposition, rule.enhanced, rule.bounceClass, rule.describe(ctx, fields), stage, ctx);
    }
  }
  return outcome('transient', '4.0.0', 'other', `local error: ${messageOf(fields)}`, stage, ctx);
}

function outcome(
  disposition: Disposition,
  enhanced: string,
  bounceClass: BounceClass,
  response: string,
  stage: DeliveryStage,
  ctx: ReplyContext,
): DeliveryOutcome {
  return { disposition, code: null, enhanced, response: readable(response), stage, bounceClass, remoteHost: ctx.remoteHost && readable(ctx.remoteHost), egressIp: ctx.egressIp };
}
