import { classifyReply } from '../engine/classify.ts';
import type { BounceRule } from '../engine/bounce-rules.ts';
import type { BounceClass } from '../mail/delivery-outcome.ts';

/**
 * What a bounce that arrives as a message says, judged with the same bounce rules
 * (config/bounce-rules.yaml and the operator's) that classify a remote's reply during delivery
 * (src/engine/classify.ts): a DSN's Diagnostic-Code and Status, or the reply a plain-text bounce
 * quotes, become the reply they stand for.
 */

export interface BounceVerdict {
  /** permanent: the recipient failed for good (Action: failed); transient: a delay notice. */
  disposition: 'permanent' | 'transient';
  /** The remote's basic reply code when the report quotes one; null otherwise. */
  code: number | null;
  /** The enhanced status code: the report's, or one implied by the disposition. */
  enhanced: string;
  /** The remote's wording as the engine stores a reply: basic code stripped, enhanced code kept, control characters written out. */
  text: string;
  bounceClass: BounceClass;
}

export interface BounceEvidence {
  /** A basic reply code quoted by the report (Diagnostic-Code: smtp; 550 ...), or null. */
  code: number | null;
  /** The report's enhanced status code (Status:, or one in the text), or null. */
  enhanced: string | null;
  /** The wording: a reply, a diagnostic, or the explanation of a plain-text bounce. */
  text: string;
  /** The report says the message is delayed, not failed (Action: delayed, "will keep trying"). */
  delayed: boolean;
}

const ENHANCED_AT_START = /^[245]\.\d{1,3}\.\d{1,3}(?=$|\s)/;

export function bounceVerdict(evidence: BounceEvidence, rules: readonly BounceRule[]): BounceVerdict {
  const { code, enhanced } = evidence;
  // A report without a reply code stands for the reply its status (or its being a delay) implies.
  const basic = code !== null && code >= 400 && code < 600 ? code : enhanced?.startsWith('4') || (enhanced === null && evidence.delayed) ? 450 : 550;
  const text = evidence.text.replace(/\s+/g, ' ').trim();
  // The status of a DSN is the enhanced code of the reply; a quoted reply that has one keeps its own.
  const wording = text.startsWith(`${basic} `) ? text.slice(4).trim() : text;
  const reply = enhanced && !ENHANCED_AT_START.test(wording) ? `${enhanced} ${wording}` : wording;
  const outcome = classifyReply({ code: basic, text: reply, stage: 'dot', remoteHost: null, egressIp: null }, rules);
  const permanent = !evidence.delayed && outcome.disposition === 'permanent';
  return {
    disposition: permanent ? 'permanent' : 'transient',
    code: basic === code ? code : null,
    enhanced: outcome.enhanced ?? (permanent ? '5.0.0' : '4.0.0'),
    text: outcome.response,
    bounceClass: outcome.bounceClass,
  };
}
