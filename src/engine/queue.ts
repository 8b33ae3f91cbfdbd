import type { Clock } from '../clock.ts';
import type { Metrics } from '../observability/metrics.ts';
import { RookeryError } from '../errors.ts';
import type { EnqueueOnceResult, IdempotencyRecord, NewMessage, Store } from '../storage/store.ts';
import type { FreshMessages } from './fresh-messages.ts';
import { hasHeader, headerValue, rfc5322Date, splitHeader, withHeaders } from '../mail/message-headers.ts';
import type { DkimSigner } from '../sender-domains/signer.ts';
import { toWireForm } from '../mail/wire-form.ts';
import { newQueueId } from './queue-id.ts';
import { POOL_HEADER, type PoolAssigner, type PoolAssignment } from '../ippool/pool-assignment.ts';
import { foreignAuthor, tenantMaySend, type Tenant, type TenantLookup } from '../access/tenants.ts';
import type { TenantLimits } from './tenant-limits.ts';
import type { UnsubscribeLinks } from '../sender-domains/unsubscribe-links.ts';
import type { SuppressionReason } from '../storage/suppressions.ts';
import { suppressedOutcome, type SuppressionCheck } from './suppression-check.ts';

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
  /** The SMTP user, or the API token's name; null for a trusted network. */
  submitter: string | null;
  /** The tenant the submitting user or token sends for; absent or null for none (trusted networks, tenantless configs). */
  tenant?: string | null;
  source: 'smtp' | 'http';
  clientAddress: string | null;
  /** Trace field to prepend, without "Received:" and without trailing CRLF. */
  received?: string;
  /**
   * A pool named in the request itself (the HTTP API's `pool`). Unlike an X-Rookery-Pool header,
   * which is ignored when the submitter may not use the pool, this is refused (POOL_NOT_ALLOWED):
   * the client asked for it in so many words, and sending from another pool would not be what
   * it asked.
   */
  pool?: string | null;
  /** When the first attempt is due (a scheduled send); at once when absent or not in the future. */
  sendAt?: number | null;
  tags?: readonly string[];
  metadata?: Readonly<Record<string, string>> | null;
  /**
   * What the door does with suppressed recipients under the reject action. `refuse`: it answers
   * for each recipient after the message is prepared (HTTP), so the queue refuses them there.
   * `refused-at-rcpt`: it refused each one already (SMTP RCPT), so the queue does not look them
   * up again. Absent: one found suppressed is dropped, as under the drop action.
   */
  suppressedRecipients?: 'refuse' | 'refused-at-rcpt';
}

/**
 * What became of each recipient given: queued (stored; delivery follows), suppressed (on the
 * suppression list and refused: not stored) or dropped (on the list; stored final, never attempted).
 */
export interface RecipientStatus {
  address: string;
  status: 'queued' | 'suppressed' | 'dropped';
  /** The suppression entry's reason, for suppressed and dropped. */
  reason?: SuppressionReason;
  /** The queue id of the message holding it (see Accepted.ids); none for a suppressed recipient, which is not stored. */
  id?: string;
}

export interface Accepted {
  /** The queue id; with a copy per recipient (see Queue.prepare), the first copy's. */
  id: string;
  /** Every queue id the message was stored under, one per copy, in the order of its recipients. */
  ids: string[];
  messageIdHeader: string;
  /** The egress pool the message sends from, and an X-Rookery-Pool value that was not allowed. */
  pool: PoolAssignment;
  /** When its first attempt is due: now, or its scheduled time. */
  dueAt: number;
  /** Every recipient given, in order, with what became of it. */
  recipients: RecipientStatus[];
}

/** What the configuration decides of a message at acceptance (src/config-parts.ts makes it). */
export interface AcceptPolicy {
  assignPool: PoolAssigner;
  tenants: TenantLookup;
  /** The List-Unsubscribe fields a message gets (src/sender-domains/unsubscribe-links.ts); absent: none. */
  unsubscribe?: Pick<UnsubscribeLinks, 'fieldsFor'>;
}

/**
 * A message completed and signed, not stored yet: what commit() stores, and what it will answer.
 * One stored message, or one per recipient when each gets a List-Unsubscribe of its own.
 */
export interface PreparedMessage {
  messages: NewMessage[];
  accepted: Accepted;
}

/** How long an Idempotency-Key of the HTTP API holds its first answer (the retention sweeper purges older ones). */
export const IDEMPOTENCY_WINDOW_MS = 24 * 3_600_000;

/**
 * The accept path shared by SMTP and HTTP: completes the headers, chooses the pool, signs, and
 * commits message and recipients durably, and only then reports success. A storage failure
 * rejects, and the caller answers 451 / 503 so the client keeps its copy. The caller logs the
 * acceptance with its own context (SMTP session, API request), so each message has one
 * acceptance line.
 *
 * submit() is prepare() and commit() of one message. The HTTP API calls the two itself: a batch
 * prepares each message on its own (a refusal fails that message alone) and commits them all in
 * one transaction, and a request with an Idempotency-Key commits its answer with its messages.
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
      /**
       * The pool assignment and the tenants of the configuration in effect, asked once per
       * message: a reload during its acceptance cannot give it one's tenant and the other's pools.
       */
      policy: () => AcceptPolicy;
      /** Each tenant's rate and daily quota (tenant-limits.ts). */
      tenantLimits: TenantLimits;
      /** The suppression list and the action on its recipients (suppression-check.ts). */
      suppressions: Pick<SuppressionCheck, 'find' | 'action'>;
      /** Called after each commit so the scheduler starts delivery at once. */
      onEnqueued: () => void;
      /** Keeps the bodies of the messages being committed for their first delivery (fresh-messages.ts). */
      fresh?: Pick<FreshMessages, 'add' | 'forget'>;
    },
  ) {}

  async submit(submission: Submission): Promise<Accepted> {
    const prepared = await this.prepare(submission);
    await this.commit([prepared]);
    return prepared.accepted;
  }

  /**
   * The message as it will be stored: its tenant's checks passed, headers completed, pool chosen,
   * its tenant's rate and quota taken, signed. Throws a RookeryError for a refusal.
   *
   * A message that gets List-Unsubscribe fields is split into one copy per recipient, each with
   * its own queue id, fields and signature: the link names one recipient, while a message is
   * stored and signed once for all of its recipients. The copies share the Message-ID (they are
   * one message to the client) and are committed together.
   */
  async prepare(submission: Submission): Promise<PreparedMessage> {
    const { clock, metrics, hostname } = this.deps;
    const policy = this.deps.policy();
    // CRLF line endings throughout (the HTTP path may hand over LF-only text), before signing.
    const received = toWireForm(submission.body);
    const { header } = splitHeader(received);
    const tenant = this.tenantOf(submission, header, policy.tenants);
    const now = clock.now();
    const id = newQueueId(now);

    const prepend = submission.received ? [`Received: ${submission.received}`] : [];
    const append: string[] = [];
    let messageIdHeader = headerValue(header, 'Message-ID');
    if (!messageIdHeader) {
      messageIdHeader = `<${id}@${hostname}>`;
      append.push(`Message-ID: ${messageIdHeader}`);
    }
    if (!hasHeader(header, 'Date')) append.push(`Date: ${rfc5322Date(now)}`);
    const poolHeader = headerValue(header, POOL_HEADER);
    const submitter = { source: submission.source, name: submission.submitter };
    const requested = submission.pool ?? null;
    const pool = policy.assignPool({ header: requested ?? poolHeader, submitter, tenant, sender: submission.sender });
    if (requested !== null && pool.source !== 'header') {
      throw new RookeryError('POOL_NOT_ALLOWED', `Pool ${JSON.stringify(requested)} is not one this client may choose`);
    }
    // One lookup for every recipient; a message whose every recipient is refused goes no further.
    const screened = await this.screen(submission, tenant?.name ?? null);
    // Last of the checks: a message refused by any of them takes nothing of the tenant's budgets.
    // Only recipients that will be attempted count.
    const attempted = screened.recipients.length - screened.dropped.length;
    if (tenant && attempted > 0) await this.takeBudget(tenant, attempted);
    // The pool header is an instruction to Rookery, never part of the delivered message.
    const remove = poolHeader === null ? [] : [POOL_HEADER];
    const dueAt = Math.max(now, submission.sendAt ?? now);

    const unsubscribe = policy.unsubscribe?.fieldsFor(tenant?.name ?? null, received) ?? null;
    const stored = screened.recipients;
    const copies =
      unsubscribe && stored.length > 0
        ? stored.map((recipient, i) => {
            const copyId = i === 0 ? id : newQueueId(now);
            return { id: copyId, recipients: [recipient], fields: unsubscribe(recipient, copyId, now) };
          })
        : [{ id, recipients: stored, fields: [] as string[] }];
    // Side by side: with a signing pool the copies are signed on its threads at once.
    const bodies = await Promise.all(
      copies.map((copy) => {
        const edited = prepend.length || append.length || remove.length || copy.fields.length;
        return signAndCount(this.deps.dkim, metrics, edited ? withHeaders(received, prepend, [...append, ...copy.fields], remove) : received);
      }),
    );
    const messages = copies.map(
      (copy, i): NewMessage => {
        const dropped = screened.dropped.filter((d) => copy.recipients.includes(d.recipient));
        return {
        id: copy.id,
        sender: submission.sender,
        recipients: copy.recipients,
        messageIdHeader,
        body: bodies[i]!,
        submitter: submission.submitter,
        tenant: tenant?.name ?? null,
        source: submission.source,
        clientAddress: submission.clientAddress,
        createdAt: now,
        dueAt,
        pool: pool.pool,
        ...(submission.tags?.length ? { tags: submission.tags } : {}),
        ...(submission.metadata ? { metadata: submission.metadata } : {}),
        ...(dropped.length ? { suppressed: dropped } : {}),
        };
      },
    );
    const holder = new Map(messages.flatMap((m) => m.recipients.map((r) => [r, m.id] as const)));
    const recipients = screened.statuses.map((s) => (s.status === 'suppressed' ? s : { ...s, id: holder.get(s.address)! }));
    return { messages, accepted: { id, ids: messages.map((m) => m.id), messageIdHeader, pool, dueAt, recipients } };
  }

  /**
   * The submission's recipients checked against its tenant's suppression list in one lookup: the
   * ones to store, those of them stored final at once (dropped), and what became of each. Under
   * the reject action a door that answers per recipient refuses them (Submission.suppressedRecipients);
   * a message left with none is refused whole (RECIPIENT_SUPPRESSED).
   */
  private async screen(submission: Submission, tenant: string | null) {
    const given = submission.recipients;
    const queued = (address: string): RecipientStatus => ({ address, status: 'queued' });
    const reject = this.deps.suppressions.action(tenant) === 'reject';
    // Looked up at RCPT a moment ago: a second lookup would only catch an entry made since, as
    // likely to come a moment after the message as before it. (A reload that turns drop into
    // reject between a transaction's RCPTs and its DATA lets that one transaction through.)
    if (reject && submission.suppressedRecipients === 'refused-at-rcpt') return { recipients: given, dropped: [], statuses: given.map(queued) };
    const found = await this.deps.suppressions.find(tenant, given);
    if (found.length === 0) return { recipients: given, dropped: [], statuses: given.map(queued) };
    const reasons = new Map(found.map((f) => [f.address, f.reason]));
    const refuse = reject && submission.suppressedRecipients === 'refuse';
    this.deps.metrics.recipientsSuppressed.inc({ door: submission.source, action: refuse ? 'reject' : 'drop' }, given.filter((r) => reasons.has(r)).length);
    const statuses = given.map((address): RecipientStatus => {
      const reason = reasons.get(address);
      return reason === undefined ? queued(address) : { address, status: refuse ? 'suppressed' : 'dropped', reason };
    });
    if (refuse) {
      const recipients = given.filter((r) => !reasons.has(r));
      if (recipients.length === 0) {
        const listed = found.map((f) => `${f.address} (${f.reason})`).join(', ');
        throw new RookeryError('RECIPIENT_SUPPRESSED', `Every recipient is on the suppression list: ${listed}`);
      }
      return { recipients, dropped: [], statuses };
    }
    return { recipients: given, dropped: found.map((f) => ({ recipient: f.address, outcome: suppressedOutcome(f.reason) })), statuses };
  }

  /**
   * Stores prepared messages in one transaction, durably, with the idempotency record when
   * given: then either all of it is stored, or (the key already answered another request within
   * IDEMPOTENCY_WINDOW_MS) none of it, and the record found is returned.
   */
  async commit(prepared: readonly PreparedMessage[], idempotency?: Omit<IdempotencyRecord, 'createdAt'>): Promise<EnqueueOnceResult> {
    const { store, clock, metrics } = this.deps;
    const messages = prepared.flatMap((p) => p.messages);
    let result: EnqueueOnceResult = { stored: true };
    let committed = false;
    // Kept before the commit: a claim written in the same batch may run before this resumes.
    this.deps.fresh?.add(messages);
    try {
      if (idempotency) {
        const now = clock.now();
        result = await store.enqueueOnce(messages, { ...idempotency, createdAt: now }, now - IDEMPOTENCY_WINDOW_MS);
      } else if (messages.length > 0) {
        await store.enqueue(messages);
      }
      committed = result.stored;
    } finally {
      if (!committed) for (const m of messages) this.deps.fresh?.forget(m.id);
    }
    if (!result.stored || messages.length === 0) return result;
    // Counted as the clients handed them over: a message split per recipient is one message.
    for (const { messages: copies } of prepared) {
      const { source, tenant } = copies[0]!;
      const recipients = copies.reduce((sum, m) => sum + m.recipients.length, 0);
      metrics.messagesAccepted.inc({ source });
      metrics.bytesAccepted.inc({ source }, copies.reduce((sum, m) => sum + m.body.length, 0));
      metrics.recipientsAccepted.inc(recipients);
      if (tenant) metrics.tenantRecipientsAccepted.inc({ tenant }, recipients);
    }
    this.deps.onEnqueued();
    return result;
  }

  /** The submission's tenant once its envelope sender and author fields are the tenant's; throws the RookeryError to answer otherwise. */
  private tenantOf(submission: Submission, header: string, tenants: TenantLookup): Tenant | null {
    if (submission.tenant == null) return null;
    const tenant = tenants.get(submission.tenant);
    // A user or token naming a tenant the config no longer has (removed by a reload) sends for no one.
    if (!tenant) throw new RookeryError('TENANT_SENDER_NOT_ALLOWED', `Tenant ${submission.tenant} is not configured`);
    if (!tenantMaySend(tenant, submission.sender)) throw new RookeryError('TENANT_SENDER_NOT_ALLOWED');
    if (foreignAuthor(tenant, header) !== null) throw new RookeryError('TENANT_SENDER_NOT_ALLOWED', 'From or Sender header address not allowed for this tenant');
    return tenant;
  }

  /** Takes the message's recipients from its tenant's rate and quota, or throws the RookeryError to answer (counted). */
  private async takeBudget(tenant: Tenant, recipients: number): Promise<void> {
    try {
      await this.deps.tenantLimits.admit(tenant, recipients);
    } catch (err) {
      if (err instanceof RookeryError) this.deps.metrics.tenantRefused.inc({ tenant: tenant.name, reason: err.code });
      throw err;
    }
  }

  /** The answer an Idempotency-Key gave within IDEMPOTENCY_WINDOW_MS, or null. */
  findIdempotent(scope: string, key: string): Promise<IdempotencyRecord | null> {
    return this.deps.store.getIdempotencyRecord(scope, key, this.deps.clock.now() - IDEMPOTENCY_WINDOW_MS);
  }
}
