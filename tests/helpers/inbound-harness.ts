import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { DATA_FILES, DEFAULT_CONFIG_DIR } from '../../src/config/data-files.ts';
import { loadBounceRules } from '../../src/engine/bounce-rules.ts';
import { BufferBudget } from '../../src/engine/buffer-budget.ts';
import { FeedbackRecorder } from '../../src/feedback/feedback-recorder.ts';
import type { MailtoUnsubscribe } from '../../src/feedback/unsubscribe-mailto.ts';
import { InboundServer } from '../../src/feedback/inbound-listener.ts';
import { createReputationTracker, type ReputationTracker } from '../../src/ippool/reputation.ts';
import type { DeliveryOutcome } from '../../src/mail/delivery-outcome.ts';
import type { Logger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import type { DomainCheckResolver } from '../../src/sender-domains/domain-check-dns.ts';
import type { Store } from '../../src/storage/store.ts';
import type { NewSuppression } from '../../src/storage/suppressions.ts';
import type { StoredWebhookEvent } from '../../src/storage/webhook-outbox.ts';
import { createFixtureResolver } from './fixture-resolver.ts';
import { SmtpTestClient, type SmtpReply } from './smtp-client.ts';
import { outboxEvents, subscribeToEverything } from './webhook-events.ts';

/**
 * The inbound listener (src/feedback/inbound-listener.ts) on a loopback port with a real store,
 * a real recorder and reputation tracker, as the daemon wires them; the suppression list and
 * the webhook events of tenant acme (an endpoint subscribed to bounces and complaints) read back
 * from the store. Complaints to fbl@sender.test count when signed by one of HARNESS_FBL_REPORTERS
 * (or a subdomain), with its key in `resolver` (tests/helpers/signed-reports.ts).
 */

export interface InboundHarness {
  server: InboundServer;
  port: number;
  metrics: Metrics;
  reputation: ReputationTracker;
  /** The memory budget of messages being received (smtp.maxBufferedBytes), which the daemon shares with submission. */
  buffers: BufferBudget;
  /** Every tenant's suppression entries, oldest first. */
  suppressed(): Promise<NewSuppression[]>;
  /** The recipient.bounced and recipient.complained events written for tenant acme, oldest first. */
  emitted(): Promise<StoredWebhookEvent[]>;
  stop(): Promise<void>;
}

export interface InboundHarnessOptions {
  /** The store the listener reads; `recordStore` (default: the same) is the one the recorder writes. */
  store: Store;
  recordStore?: Store;
  logger: Logger;
  /** Laid over the harness's inbound and returnPath settings. */
  config?: ConfigInput;
  unsubscribe?: MailtoUnsubscribe;
  tls?: { key: Buffer; cert: Buffer } | null;
  /** The DKIM key lookups of reports (default: no name exists). */
  resolver?: Pick<DomainCheckResolver, 'resolveTxt'>;
}

export const HARNESS_VERP_SECRET = 'inbound-harness-secret-0123456789abcdefgh';
/** inbound.fblReporters of the harness: the feedback loops of tests/fixtures/feedback/. */
export const HARNESS_FBL_REPORTERS = ['yahoo.test', 'hotmail.test', 'fastmail.test', 'example.com'];
const BOUNCE_RULES = loadBounceRules(join(DEFAULT_CONFIG_DIR, DATA_FILES.bounceRules));

export async function startInboundHarness(options: InboundHarnessOptions): Promise<InboundHarness> {
  const config = parseConfig(
    {
      hostname: 'mx.rookery.test',
      returnPath: { secret: HARNESS_VERP_SECRET, domains: { 'sender.test': {} } },
      ...options.config,
      inbound: { listeners: [{ host: '127.0.0.1', port: 0 }], fblAddresses: ['fbl@sender.test'], fblReporters: HARNESS_FBL_REPORTERS, ...options.config?.inbound },
    },
    'test',
    {},
  );
  const metrics = new Metrics();
  const reputation = createReputationTracker({ windowMs: 3_600_000, minSamples: 1 });
  const clock = { now: () => Date.now() };
  const recordStore = options.recordStore ?? options.store;
  const hook = await subscribeToEverything(options.store, 'acme', ['recipient.bounced', 'recipient.complained']);
  const all = { tenant: null, reason: null, address: null, since: null, until: null, now: null };
  const suppressed = async () =>
    (await options.store.listSuppressions(all, null, 1000))
      .reverse()
      .map(({ tenant, address, reason, source, createdAt, expiresAt }) => ({ tenant, address: address!, reason, source, createdAt, expiresAt }));
  const emitted = () => outboxEvents(options.store, hook);
  const recorder = new FeedbackRecorder({
    store: recordStore,
    reputation,
    providerOf: async (domain) => (domain === 'gmail.test' ? 'gmail' : 'other'),
    clock,
    logger: options.logger,
    metrics,
  });
  const buffers = new BufferBudget(config.smtp.maxBufferedBytes);
  const server = new InboundServer({
    config,
    current: () => ({ config, bounceRules: BOUNCE_RULES }),
    store: options.store,
    recorder,
    unsubscribe: options.unsubscribe,
    tls: options.tls ?? null,
    buffers,
    reverseLookup: async () => [],
    resolver: options.resolver ?? createFixtureResolver(),
    logger: options.logger,
    metrics,
    clock,
    shutdownGraceMs: 500,
  });
  await server.start();
  return { server, port: server.addresses()[0]!.port, metrics, reputation, buffers, suppressed, emitted, stop: () => server.stop() };
}

/** One SMTP transaction: each RCPT's reply, and DATA's when any recipient was taken. */
export async function deliver(port: number, envelope: { from: string; to: string[] }, message: Buffer | string): Promise<{ rcpt: SmtpReply[]; data: SmtpReply | null }> {
  const client = await SmtpTestClient.connect({ host: '127.0.0.1', port });
  try {
    await client.ehlo('mx.remote.test');
    const mail = await client.send(`MAIL FROM:<${envelope.from}>`);
    if (mail.code !== 250) throw new Error(`MAIL refused: ${mail.code} ${mail.text}`);
    const rcpt: SmtpReply[] = [];
    for (const to of envelope.to) rcpt.push(await client.send(`RCPT TO:<${to}>`));
    if (!rcpt.some((r) => r.code === 250)) return { rcpt, data: null };
    const body = Buffer.isBuffer(message) ? message : Buffer.from(message, 'latin1');
    // Dot-stuffing, as any client does.
    const stuffed = Buffer.from(body.toString('latin1').replace(/(^|\r\n)\./g, '$1..'), 'latin1');
    const data = await client.data(stuffed.at(-1) === 0x0a ? stuffed.subarray(0, -2) : stuffed);
    await client.send('QUIT').catch(() => undefined);
    return { rcpt, data };
  } finally {
    await client.close();
  }
}

/** A delivery of the recipient row from `egressIp`: the state the feedback tests start from. */
export function deliveredFrom(egressIp: string): DeliveryOutcome {
  return { disposition: 'delivered', code: 250, enhanced: '2.0.0', response: '2.0.0 Ok', stage: 'dot', bounceClass: 'none', remoteHost: 'mx.dest.test', egressIp };
}
