import type { Clock } from '../clock.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { NewMessage, Store } from '../storage/store.ts';
import { hasHeader, headerValue, rfc5322Date, splitHeader, withHeaders } from '../mail/message-headers.ts';
import type { DkimSigner } from '../sender-domains/signer.ts';
import { toWireForm } from '../mail/wire-form.ts';
import { newQueueId } from './queue-id.ts';
import { POOL_HEADER, type PoolAssigner, type PoolAssignment } from '../ippool/pool-assignment.ts';
import { tenantMaySend, type Tenant, type TenantLookup } from '../access/tenants.ts';
import { RookeryError } from '../errors.ts';
import type { TenantLimits } from './tenant-limits.ts';

/**
 * Signs a message once, in the form it is stored and delivered in (every attempt sends these
 * bytes), and counts the signing. Every message Rookery stores passes here: accepted mail and DSNs.
 */
export async function signAndCount(dkim: Pick<DkimSigner, 'sign'>, metrics: Metrics, body: Buffer): Promise<Buffer> {
  const started = performance.now();
  const signed = await dkim.sign(body);
  if (signed.domain) {
    metrics.dkimSigned.inc({ domain: signed.domain });
    metrics.dkimSignSeconds.observe((performance.now() - started) / 1000);
  }
  return signed.message;
}

/** A message as handed over by a client (SMTP or HTTP), before Rookery adds its headers. */
export interface Submission {
  sender: string;
  recipients: string[];
  /** Wire form: CRLF line endings, dot-unstuffed. */
  body: Buffer;
  submitter: string | null;
  /** The tenant the submitting user or token sends for; absent or null for none (trusted networks, tenantless configs). */
  tenant?: string | null;
  source: 'smtp' | 'http';
  clientAddress: string | null;
  /** Trace field to prepend, without "Received:" and without trailing CRLF. */
  received?: string;
}

export interface Accepted {
  id: string;
  messageIdHeader: string;
  /** The egress pool the message sends from, and an X-Rookery-Pool value that was not allowed. */
  pool: PoolAssignment;
}

/**
 * The accept path shared by SMTP and HTTP: completes the headers, commits message and recipients
 * durably, and only then reports success. A storage failure rejects, and the caller answers
 * 451 / 503 so the client keeps its copy. The caller logs the acceptance with its own context
 * (SMTP session, API request), so each message has one acceptance line.
 */
export class Queue {
  constructor(
    private readonly deps: {
      store: Store;
      clock: Clock;
      metrics: Metrics;
      hostname: string;
      /** Signs the message in its final wire form, once (see src/sender-domains/signer.ts). */
      dkim: Pick<DkimSigner, 'sign'>;
      /** Chooses the message's egress pool (see src/ippool/pool-assignment.ts). */
      assignPool: PoolAssigner;
      tenants: TenantLookup;
      /** Each tenant's rate and daily quota (tenant-limits.ts). */
      tenantLimits: TenantLimits;
      /** Called after each commit so the scheduler starts delivery at once. */
      onEnqueued: () => void;
    },
  ) {}

  async submit(submission: Submission): Promise<Accepted> {
    const { store, clock, metrics, hostname } = this.deps;
    const tenant = await this.admitTenant(submission);
    const now = clock.now();
    const id = newQueueId(now);
    // CRLF line endings throughout (the HTTP path may hand over LF-only text), before signing.
    const received = toWireForm(submission.body);
    const { header } = splitHeader(received);

    const prepend = submission.received ? [`Received: ${submission.received}`] : [];
    const append: string[] = [];
    let messageIdHeader = headerValue(header, 'Message-ID');
    if (!messageIdHeader) {
      messageIdHeader = `<${id}@${hostname}>`;
      append.push(`Message-ID: ${messageIdHeader}`);
    }
    if (!hasHeader(header, 'Date')) append.push(`Date: ${rfc5322Date(now)}`);
    const poolHeader = headerValue(header, POOL_HEADER);
    const pool = this.deps.assignPool({ header: poolHeader, submitter: submission.submitter, tenant, sender: submission.sender });
    // The pool header is an instruction to Rookery, never part of the delivered message.
    const remove = poolHeader === null ? [] : [POOL_HEADER];

    const message: NewMessage = {
      id,
      sender: submission.sender,
      recipients: submission.recipients,
      messageIdHeader,
      body: prepend.length || append.length || remove.length ? withHeaders(received, prepend, append, remove) : received,
      submitter: submission.submitter,
      tenant: tenant?.name ?? null,
      source: submission.source,
      clientAddress: submission.clientAddress,
      createdAt: now,
      dueAt: now,
      pool: pool.pool,
    };
    message.body = await signAndCount(this.deps.dkim, metrics, message.body);
    await store.enqueue([message]);
    metrics.messagesAccepted.inc({ source: submission.source });
    metrics.recipientsAccepted.inc(submission.recipients.length);
    if (tenant) metrics.tenantRecipientsAccepted.inc({ tenant: tenant.name }, submission.recipients.length);
    this.deps.onEnqueued();
    return { id, messageIdHeader, pool };
  }

  /** The submission's tenant once its sender domain, rate and quota allow the message; throws the RookeryError to answer otherwise. */
  private async admitTenant(submission: Submission): Promise<Tenant | null> {
    if (submission.tenant == null) return null;
    const tenant = this.deps.tenants.get(submission.tenant);
    // A user or token naming a tenant the config no longer has (removed by a reload) sends for no one.
    if (!tenant) throw new RookeryError('TENANT_SENDER_NOT_ALLOWED', `Tenant ${submission.tenant} is not configured`);
    if (!tenantMaySend(tenant, submission.sender)) throw new RookeryError('TENANT_SENDER_NOT_ALLOWED');
    try {
      await this.deps.tenantLimits.admit(tenant, submission.recipients.length);
    } catch (err) {
      if (err instanceof RookeryError) this.deps.metrics.tenantRefused.inc({ tenant: tenant.name, reason: err.code });
      throw err;
    }
    return tenant;
  }
}
