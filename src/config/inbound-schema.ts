import { z } from 'zod';
import { normalizeDomain } from '../mail/address.ts';
import { durationSchema, positiveDurationSchema } from './duration.ts';

/**
 * The config's `inbound:` key: the SMTP listener where remote MTAs deliver what comes back
 * (src/feedback/): bounces to VERP return paths, complaints to the feedback-loop addresses, and
 * mail to the unsubscribe addresses. It accepts mail for those recipients only, from anyone,
 * without AUTH. No listener (the default) means nothing comes back to this daemon.
 *
 *     inbound:
 *       listeners: [{ host: 203.0.113.10, port: 25 }]
 *       fblAddresses: [fbl@example.com]
 *       fblReporters: [fbl.example.net, staff@mail.example.org]
 */

/** An address as RCPT TO would carry it; compared without regard to case. */
const address = z
  .string()
  .regex(/^[^\s@<>"]+@[A-Za-z0-9.-]+$/, { message: 'not an email address (local@domain)' })
  .transform((value) => value.toLowerCase());

/**
 * A trusted feedback loop: a domain name, in the form every comparison uses (lower case, an IDN as
 * its A-label), or one address that sends the reports (local@domain), for a domain that also hosts
 * mailboxes whose users could sign a report of their own. The local part stays as written: the
 * report's From must carry it so.
 */
const reporter = z.string().transform((value, ctx) => {
  const at = value.lastIndexOf('@');
  const normalized = normalizeDomain(value.slice(at + 1));
  if (at < 0 && normalized) return normalized;
  if (at > 0 && normalized && /^[^\s@<>"]+$/.test(value.slice(0, at))) return `${value.slice(0, at)}@${normalized}`;
  ctx.addIssue({ code: 'custom', message: `${at < 0 ? 'not a domain name' : 'not an address (local@domain)'}: ${JSON.stringify(value)}` });
  return z.NEVER;
});

const listener = z.strictObject({
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(0).max(65535),
  /** Pause before the 220 greeting; a client that talks during it is refused (as on smtp.listeners). */
  greetingDelay: durationSchema.default(0),
});

export const inboundConfigSchema = z
  .strictObject({
    listeners: z.array(listener).default([]),
    /** Bounces and reports are small; the returned original is what makes them large. */
    maxMessageBytes: z.number().int().positive().default(2 * 1024 * 1024),
    /** Recipients per message: a bounce has one, a report one or two. */
    maxRecipients: z.number().int().positive().default(10),
    /** Where feedback loops (Yahoo, Microsoft JMRP, ...) send their ARF complaints. */
    fblAddresses: z.array(address).default([]),
    /**
     * The feedback loops whose reports are believed: a report to a feedback-loop address counts
     * only with a DKIM signature that verifies, by one of these domains or a subdomain, aligned
     * with its From; or, for an address here, from that address signed by its domain or a parent
     * of it (src/feedback/report-authentication.ts). Anyone can write an ARF report. Only these
     * signers' keys are looked up.
     */
    fblReporters: z.array(reporter).default([]),
    maxConnections: z.number().int().positive().default(200),
    maxConnectionsPerClient: z.number().int().positive().default(10),
    /** How long reading and recording one message may take before the sender is told to retry (451). */
    processingTimeout: positiveDurationSchema.default(30_000),
  })
  .superRefine((value, ctx) => {
    // No default trusts anyone: addresses without reporters would take every complaint unchecked
    // (a configuration written before reports were authenticated), or, checked, none at all.
    if (value.fblAddresses.length > 0 && value.fblReporters.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['fblReporters'], message: 'required when inbound.fblAddresses lists an address: list the domains, or the addresses, whose DKIM-signed feedback reports are trusted (e.g. [fbl.example.net, reports@example.org])' });
    }
  })
  .prefault({});

export type InboundConfig = z.output<typeof inboundConfigSchema>;
export type InboundListenerConfig = InboundConfig['listeners'][number];
