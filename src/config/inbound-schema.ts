import { z } from 'zod';
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
 */

/** An address as RCPT TO would carry it; compared without regard to case. */
const address = z
  .string()
  .regex(/^[^\s@<>"]+@[A-Za-z0-9.-]+$/, { message: 'not an email address (local@domain)' })
  .transform((value) => value.toLowerCase());

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
    maxConnections: z.number().int().positive().default(200),
    maxConnectionsPerClient: z.number().int().positive().default(10),
    /** How long reading and recording one message may take before the sender is told to retry (451). */
    processingTimeout: positiveDurationSchema.default(30_000),
  })
  .prefault({});

export type InboundConfig = z.output<typeof inboundConfigSchema>;
export type InboundListenerConfig = InboundConfig['listeners'][number];
