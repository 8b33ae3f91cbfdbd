import pg from 'pg';
import { systemClock, type Clock } from '../../clock.ts';
import type { Logger } from '../../observability/logger.ts';
import type { DeliveryOutcome } from '../../mail/delivery-outcome.ts';
import { maskCredentials } from '../../observability/mask-credentials.ts';
import type {
  AttemptEvent,
  AttemptResult,
  AuditCursor,
  AuditEntry,
  AuditFilters,
  AuditRecord,
  ClaimedRecipient,
  ClaimOptions,
  DeferredBacklog,
  DsnRecord,
  EnqueueOnceResult,
  FollowUp,
  IdempotencyRecord,
  Lease,
  MessageInfo,
  MessageQuery,
  MessageSummary,
  NewMessage,
  PoolStateEntry,
  RecipientRow,
  RecipientState,
  Store,
  StoredMessage,
  UsageChange,
  UsageWindow,
} from '../store.ts';
import {
  checkAttemptResults,
  checkClaimOptions,
  checkMessages,
  compareDue,
  emptyCounts,
  followUpsToStore,
  heldBackResults,
  newLeaseToken,
  purgeInChunks,
  toAttemptEvent,
  toClaimedRecipient,
  toRecipientRow,
  toStoredMessage,
} from '../store-rows.ts';
import { WriteBatcher, type WriteOp } from '../write-batcher.ts';
import { postgresClientConfig } from './client-config.ts';
import { checkSchemaName } from './identifiers.ts';
import { migratePostgres } from './migrations.ts';
import { asRefusal, UncertainCommitError, withTransaction } from './transaction.ts';
import * as sql from './queries.ts';
import * as reads from './message-queries.ts';
import * as audit from './audit-queries.ts';
import * as blocklists from './blocklist-queries.ts';
import { toBlocklistState, type BlocklistState } from '../blocklist-states.ts';
import * as control from './queue-control-queries.ts';
import type { ParkedRelease, PausedScopes, QueuePause, QueuedClaimOptions, QueueScope, QueueSelection } from '../queue-control.ts';
import { checkBulk, checkPark, checkRelease, claimRange, pauseInsertValues, scopeKey, selectionValue, toQueuePause } from '../queue-control-rows.ts';
import * as idempotency from './idempotency-queries.ts';
import * as tlsReports from './tls-report-queries.ts';
import { checkDay, stsPolicyValues, tlsCountValues, toStsPolicy, toTlsCount } from '../tls-report-rows.ts';
import type { StoredStsPolicy, TlsReportEnd, TlsSessionCount } from '../tls-reports.ts';
import { IDEMPOTENCY_PURGE_CHUNK, idempotencyInsertValues, toIdempotencyRecord } from '../idempotency-rows.ts';
import { AUDIT_PURGE_CHUNK, auditInsertValues, auditQueryBounds, toAuditRecord } from '../audit-rows.ts';
import { messageQueryBounds, toBacklogGroups, toDsnRecord, toMessageInfo, toMessageSummaries } from '../message-rows.ts';
import { WorkListener } from './work-listener.ts';
import * as feedback from './feedback-queries.ts';
import type { FeedbackEvent, FeedbackRecipient, FeedbackRecorded, NewFeedbackEvent } from '../feedback-events.ts';
import { feedbackInsertValues, recipientBounce, toFeedbackEvent, toFeedbackRecipient } from '../feedback-rows.ts';
import { DataRefusedError } from '../store.ts';
import * as suppression from './suppression-queries.ts';
import {
  AddressHasher,
  addressesByHash,
  SUPPRESSION_PURGE_CHUNK,
  suppressionQueryBounds,
  suppressionChunks,
  tenantKey,
  toSuppressionRecord,
} from '../suppression-rows.ts';
import type { AddSuppressionOptions, NewSuppression, SuppressionCursor, SuppressionFilters, SuppressionRecord } from '../suppressions.ts';
import * as hooks from './webhook-queries.ts';
import * as queueAge from './queue-age-queries.ts';
import type { UnfinishedScan } from '../queue-age.ts';
import { postgresEraseRecipient, postgresPurgeErasedMessages, postgresRecipientData, type PostgresPersonalDataDeps } from './postgres-personal-data.ts';
import type { ErasureCounts, RecipientData } from '../personal-data.ts';
import type { ClaimedWebhookDelivery, DisabledWebhook, NewWebhookEndpoint, WebhookAttemptResult, WebhookChange, WebhookClaimOptions, WebhookDelivery, WebhookDeliveryQuery, WebhookEndpoint, WebhookEvent, WebhookLease, WebhookOutboxStats, WebhookReplayRange } from '../webhook-outbox.ts';
import {
  WEBHOOK_PURGE_CHUNK,
  changedWebhookRow,
  checkWebhookEndpoint,
  compareWebhookDue,
  disabledForFailingReason,
  errorText,
  newWebhookLeaseToken,
  normalEventTypes,
  resultsByWebhook,
  toClaimedWebhookDelivery,
  toWebhookDelivery,
  toWebhookEndpoint,
  webhookEventValues,
} from '../webhook-rows.ts';

export interface PostgresStoreOptions {
  url: string;
  /** Schema holding the tables, created by migrate() when missing. Default "public". */
  schema?: string;
  logger: Logger;
  clock?: Clock;
  /** Pooled connections; the LISTEN connection comes on top. Default 10. */
  poolSize?: number;
  /** How long a query waits for a free or new connection before failing. Default 10 s. */
  connectionTimeoutMs?: number;
}

/** Messages purged per statement, so a large purge never holds many row locks for long. */
const PURGE_CHUNK = 1000;
/** Looks at whether an uncertain commit stored the messages: tries, and the pause between them. */
const UNCERTAIN_CHECKS = 3;
const UNCERTAIN_CHECK_PAUSE_MS = 250;

/** The context of a batched write: the transaction's connection and whether to NOTIFY at commit. */
interface PgTransaction {
  client: pg.PoolClient;
  notify: boolean;
  /** Its COMMIT got no answer: it may have committed. */
  uncertain: boolean;
}

/**
 * The shared queue for one or several daemons. Concurrent writes (enqueue, recordAttempts,
 * release) are grouped into one transaction per batch; claims and lease renewals are single
 * statements using FOR UPDATE SKIP LOCKED or row locks. Every connection sets
 * synchronous_commit=on, so a resolved write is on the server's disk. Over 300 lines: one short
 * method per Store operation.
 */
export function createPostgresStore(options: PostgresStoreOptions): Store {
  return new PostgresStore(options);
}

class PostgresStore implements Store {
  readonly driver = 'postgres' as const;
  private readonly pool: pg.Pool;
  private readonly schema: string;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly batcher: WriteBatcher<PgTransaction>;
  private readonly listener: WorkListener;
  private closing: Promise<void> | null = null;
  /** Keys suppressed addresses with the database's salt, read at migrate(): every node reads the same. */
  private hasher: AddressHasher | null = null;

  constructor(options: PostgresStoreOptions) {
    this.schema = checkSchemaName(options.schema ?? 'public');
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger.child({ component: 'storage', driver: 'postgres', schema: this.schema });
    const clientConfig = postgresClientConfig({ ...options, schema: this.schema });
    this.pool = new pg.Pool({ ...clientConfig, max: options.poolSize ?? 10 });
    // An idle pooled connection that dies emits here; without a handler the process would crash.
    this.pool.on('error', (err) => {
      this.logger.warn({ event: 'storage.connection.lost', err }, 'idle PostgreSQL connection lost');
    });
    this.batcher = new WriteBatcher<PgTransaction>({ run: (ops) => this.runTransaction(ops), logger: this.logger });
    this.listener = new WorkListener({ clientConfig, payload: this.schema, logger: this.logger });
    this.logger.debug({ event: 'storage.opened', url: maskCredentials(options.url) }, 'PostgreSQL store opened');
  }

  async migrate(): Promise<void> {
    this.assertOpen();
    await migratePostgres(this.pool, this.schema, this.clock.now(), this.logger);
    this.hasher ??= new AddressHasher((await suppression.selectSalt(this.pool)) ?? '');
  }

  async enqueue(messages: NewMessage[]): Promise<void> {
    this.assertOpen();
    if (messages.length === 0) return;
    checkMessages(messages);
    const attempts: PgTransaction[] = [];
    try {
      await this.batcher.submit(async (tx) => {
        attempts.push(tx);
        await sql.insertMessages(tx.client, messages);
        tx.notify = true;
      });
    } catch (err) {
      // A transaction holding them lost its connection during COMMIT (a retry of it may then have
      // failed on their ids): refusing messages that are stored would make the client send them
      // again, so the database decides.
      if (!attempts.some((tx) => tx.uncertain) || !(await this.allStored(messages))) throw err;
      this.logger.warn(
        { event: 'storage.commit.uncertain', messages: messages.map((m) => m.id) },
        'connection lost during COMMIT; the messages were stored',
      );
    }
  }

  /**
   * The key and the messages in one batched transaction. When the key is another open
   * transaction's (a request with the same key on another node, or in another batch here), the
   * claim waits for that transaction, then finds its record; the batch waits with it, for as long
   * as a commit takes.
   */
  async enqueueOnce(messages: NewMessage[], record: IdempotencyRecord, notBefore: number): Promise<EnqueueOnceResult> {
    this.assertOpen();
    checkMessages(messages);
    const values = idempotencyInsertValues(record);
    const attempts: PgTransaction[] = [];
    try {
      return await this.batcher.submit(async (tx): Promise<EnqueueOnceResult> => {
        attempts.push(tx);
        if (!(await idempotency.claimIdempotencyKey(tx.client, values, notBefore))) {
          const existing = await idempotency.selectIdempotencyKey(tx.client, record.scope, record.key, notBefore);
          if (!existing) throw new Error(`idempotency key ${record.key} is neither free nor held`);
          return { stored: false, existing: toIdempotencyRecord(existing) };
        }
        if (messages.length > 0) {
          await sql.insertMessages(tx.client, messages);
          tx.notify = true;
        }
        return { stored: true };
      });
    } catch (err) {
      // As in enqueue: after a COMMIT without an answer, the database says what it holds. The
      // record names this request's messages (their queue ids), so finding it is finding them.
      if (!attempts.some((tx) => tx.uncertain)) throw err;
      const found = await this.getIdempotencyRecord(record.scope, record.key, notBefore).catch(() => null);
      if (found?.response !== record.response) throw err;
      this.logger.warn({ event: 'storage.commit.uncertain', messages: messages.map((m) => m.id) }, 'connection lost during COMMIT; the messages were stored');
      return { stored: true };
    }
  }

  /* Outbound TLS (tls-reports.ts): MTA-STS policies, TLS-RPT counts and report claims. */

  async getStsPolicy(domain: string): Promise<StoredStsPolicy | null> {
    this.assertOpen();
    const row = await tlsReports.selectStsPolicy(this.pool, domain.toLowerCase());
    return row ? toStsPolicy(row) : null;
  }

  async saveStsPolicy(policy: StoredStsPolicy): Promise<void> {
    this.assertOpen();
    await tlsReports.upsertStsPolicy(this.pool, stsPolicyValues(policy));
  }

  async addTlsSessionCounts(counts: readonly TlsSessionCount[]): Promise<number> {
    this.assertOpen();
    const rows = tlsCountValues(counts);
    return rows.length ? rows.length - (await tlsReports.addTlsCounts(this.pool, rows)) : 0;
  }

  async tlsReportsDue(day: string, now: number, limit: number): Promise<string[]> {
    this.assertOpen();
    return tlsReports.selectTlsReportsDue(this.pool, checkDay(day), now, limit);
  }

  async tlsSessionCounts(domain: string, day: string): Promise<TlsSessionCount[]> {
    this.assertOpen();
    return (await tlsReports.selectTlsCounts(this.pool, domain.toLowerCase(), checkDay(day))).map(toTlsCount);
  }

  async claimTlsReport(domain: string, day: string, owner: string, until: number, now: number): Promise<boolean> {
    this.assertOpen();
    return tlsReports.claimTlsReport(this.pool, domain.toLowerCase(), checkDay(day), owner, until, now);
  }

  async finishTlsReport(domain: string, day: string, owner: string, end: TlsReportEnd, now: number): Promise<boolean> {
    this.assertOpen();
    return tlsReports.finishTlsReport(this.pool, domain.toLowerCase(), checkDay(day), owner, end, now);
  }

  async purgeTlsReports(beforeDay: string, expiredBefore: number): Promise<number> {
    this.assertOpen();
    return tlsReports.purgeTlsReports(this.pool, checkDay(beforeDay), expiredBefore);
  }

  async getIdempotencyRecord(scope: string, key: string, notBefore: number): Promise<IdempotencyRecord | null> {
    this.assertOpen();
    const row = await idempotency.selectIdempotencyKey(this.pool, scope, key, notBefore);
    return row ? toIdempotencyRecord(row) : null;
  }

  /** One statement per chunk, like purgeAudit. */
  async purgeIdempotencyKeys(before: number): Promise<number> {
    this.assertOpen();
    return purgeInChunks(IDEMPOTENCY_PURGE_CHUNK, (limit) => idempotency.purgeIdempotencyKeys(this.pool, before, limit));
  }

  async claimDue(options: ClaimOptions): Promise<ClaimedRecipient[]> {
    this.assertOpen();
    checkClaimOptions(options);
    const { now, limit, owner, leaseMs, paused } = options;
    if (limit === 0) return [];
    const token = newLeaseToken();
    const rows = await sql.claimDue(this.pool, now, limit, owner, now + leaseMs, token, paused);
    return rows.sort(compareDue).map((row) => toClaimedRecipient(row, token));
  }

  async renewLeases(leases: Lease[], lockedUntil: number): Promise<number[]> {
    this.assertOpen();
    if (leases.length === 0) return [];
    return sql.renewLeases(this.pool, leases, lockedUntil);
  }

  async nextDueAt(paused?: PausedScopes): Promise<number | null> {
    this.assertOpen();
    return sql.nextDueAt(this.pool, paused);
  }

  async loadMessage(messageId: string): Promise<StoredMessage | null> {
    this.assertOpen();
    const row = await sql.selectMessage(this.pool, messageId);
    return row ? toStoredMessage(row) : null;
  }

  async recordAttempts(results: AttemptResult[], followUps: FollowUp[] = []): Promise<number[]> {
    this.assertOpen();
    const checked = checkAttemptResults(results);
    checkMessages(followUps.map((f) => f.message));
    if (checked.length === 0 && followUps.length === 0) return [];
    const now = this.clock.now();
    return this.batcher.submit(async (tx) => {
      // The rows a follow-up reports are locked first: it is stored with all of them or none.
      const reported = new Set(followUps.flatMap((f) => f.reports));
      const locked = reported.size > 0 ? await sql.lockLeases(tx.client, checked.filter((r) => reported.has(r.recipientId))) : [];
      const delivering = new Set(locked.filter((row) => row.delivering).map((row) => row.id));
      const heldBack = heldBackResults(followUps, (id) => delivering.has(id));
      const toApply = checked.filter((r) => !heldBack.has(r.recipientId));
      const recorded = toApply.length > 0 ? await sql.applyAttempts(tx.client, now, toApply) : [];
      const toStore = followUpsToStore(followUps, new Set(recorded.filter((r) => r.applied).map((r) => r.id)));
      if (toStore.length > 0) {
        await sql.insertMessages(tx.client, toStore);
        tx.notify = true;
      }
      const recordedBefore = locked.filter((row) => heldBack.has(row.id) && !row.delivering).map((row) => row.id);
      return [...recorded.map((r) => r.id), ...recordedBefore];
    }).catch((err: unknown) => {
      throw asRefusal(err);
    });
  }

  async release(leases: Lease[], dueAt: number): Promise<void> {
    this.assertOpen();
    if (leases.length === 0) return;
    const now = this.clock.now();
    await this.batcher.submit(async (tx) => {
      if ((await sql.releaseRecipients(tx.client, leases, dueAt, now)) > 0) tx.notify = true;
    });
  }

  /** One statement each: like claims, a bulk update holds its rows' locks for one statement only. */
  async holdDomains(domains: string[], until: number, maxAgeMs: number, limit: number): Promise<number> {
    this.assertOpen();
    return sql.holdDomains(this.pool, domains, until, maxAgeMs, this.clock.now(), limit);
  }

  async resumeDomains(domains: string[], until: number, now: number, limit: number): Promise<number> {
    this.assertOpen();
    const resumed = await sql.resumeDomains(this.pool, domains, until, now, limit);
    // Due now: the other nodes may take them too.
    if (resumed > 0) await sql.notifyWork(this.pool, this.schema);
    return resumed;
  }

  async releaseAll(owner: string, dueAt: number): Promise<number> {
    this.assertOpen();
    const now = this.clock.now();
    return this.batcher.submit(async (tx) => {
      const released = await sql.releaseOwner(tx.client, owner, dueAt, now);
      if (released > 0) tx.notify = true;
      return released;
    });
  }

  async countByState(): Promise<Record<RecipientState, number>> {
    this.assertOpen();
    const counts = emptyCounts();
    for (const { state, n } of await sql.countByState(this.pool)) counts[state as RecipientState] = n;
    return counts;
  }

  async listRecipients(messageId: string): Promise<RecipientRow[]> {
    this.assertOpen();
    return (await sql.selectRecipients(this.pool, messageId)).map(toRecipientRow);
  }

  async listEvents(messageId: string): Promise<AttemptEvent[]> {
    this.assertOpen();
    return (await sql.selectEvents(this.pool, messageId)).map(toAttemptEvent);
  }

  async getMessageInfo(messageId: string): Promise<MessageInfo | null> {
    this.assertOpen();
    const row = await reads.selectMessageInfo(this.pool, messageId);
    return row ? toMessageInfo(row) : null;
  }

  async listMessages(query: MessageQuery): Promise<MessageSummary[]> {
    this.assertOpen();
    return toMessageSummaries(await reads.selectMessagePage(this.pool, messageQueryBounds(query)));
  }

  async findDsns(messageId: string, from: number, to: number): Promise<DsnRecord[]> {
    this.assertOpen();
    return (await reads.selectDsns(this.pool, messageId, from, to)).map(toDsnRecord);
  }

  async deferredBacklog(top: number): Promise<DeferredBacklog> {
    this.assertOpen();
    const b = await reads.selectBacklog(this.pool, top);
    return { count: b.n, oldestCreatedAt: b.oldest, byDomain: toBacklogGroups(b.byDomain), byPool: toBacklogGroups(b.byPool), byEgressIp: toBacklogGroups(b.byIp) };
  }

  async purgeFinished(before: number): Promise<number> {
    this.assertOpen();
    return purgeInChunks(PURGE_CHUNK, (limit) => sql.purgeFinished(this.pool, before, limit));
  }

  async dropFinishedBodies(before: number): Promise<number> {
    this.assertOpen();
    return purgeInChunks(PURGE_CHUNK, (limit) => sql.dropFinishedBodies(this.pool, before, limit));
  }

  /** Through the write batcher like every write: one transaction with whatever else is pending. */
  async recordAudit(entry: AuditEntry): Promise<void> {
    this.assertOpen();
    const values = auditInsertValues(entry);
    await this.batcher.submit((tx) => audit.insertAudit(tx.client, values)).catch((err: unknown) => {
      throw asRefusal(err);
    });
  }

  async listAudit(filters: AuditFilters, after: AuditCursor | null, limit: number): Promise<AuditRecord[]> {
    this.assertOpen();
    return (await audit.selectAuditPage(this.pool, auditQueryBounds(filters, after, limit))).map(toAuditRecord);
  }

  /** One statement per chunk, like purgeFinished: never many row locks for long. */
  async purgeAudit(before: number): Promise<number> {
    this.assertOpen();
    return purgeInChunks(AUDIT_PURGE_CHUNK, (limit) => audit.purgeAudit(this.pool, before, limit));
  }

  /**
   * The event and the bounce of its recipient in one batched transaction. The recipient row is
   * locked first, so a result the engine records for it meanwhile waits (or went first).
   */
  async recordFeedback(event: NewFeedbackEvent, webhook: WebhookEvent | null = null): Promise<FeedbackRecorded> {
    this.assertOpen();
    const values = feedbackInsertValues(event);
    if (webhook) webhookEventValues([webhook]);
    const now = this.clock.now();
    return this.batcher.submit(async (tx): Promise<FeedbackRecorded> => {
      if (!(await feedback.lockFeedbackRecipient(tx.client, event.recipientId, event.messageId))) {
        throw new DataRefusedError(`recordFeedback: message ${event.messageId} has no recipient ${event.recipientId}`);
      }
      const id = await feedback.insertFeedback(tx.client, values);
      if (id === undefined) return { id: (await feedback.selectFeedbackIdByFingerprint(tx.client, event.fingerprint))!, duplicate: true, bounced: false };
      const change = recipientBounce(event, values);
      const bounced = change !== null && (await feedback.bounceDelivered(tx.client, change));
      if (webhook) await hooks.insertWebhookEvents(tx.client, [webhook], now);
      return { id, duplicate: false, bounced };
    }).catch((err: unknown) => {
      throw asRefusal(err);
    });
  }

  async listFeedback(messageId: string): Promise<FeedbackEvent[]> {
    this.assertOpen();
    return (await feedback.selectFeedback(this.pool, messageId)).map(toFeedbackEvent);
  }

  async findRecipientForFeedback(messageId: string, recipient: number | string): Promise<FeedbackRecipient | null> {
    this.assertOpen();
    const row =
      typeof recipient === 'number'
        ? await feedback.selectFeedbackRecipientById(this.pool, messageId, recipient)
        : await feedback.selectFeedbackRecipientByAddress(this.pool, messageId, recipient);
    return row ? toFeedbackRecipient(row) : null;
  }

  async findMessagesByHeaderId(messageIdHeader: string, limit: number): Promise<string[]> {
    this.assertOpen();
    return feedback.selectMessageIdsByHeader(this.pool, messageIdHeader, limit);
  }

  /*
   * The suppression list: single statements on the pool, like the pool counters; an import's
   * chunks are one statement (one transaction) each.
   */

  async addSuppressions(entries: readonly NewSuppression[], webhooks: readonly WebhookEvent[] = [], options: AddSuppressionOptions = {}): Promise<number> {
    webhookEventValues(webhooks);
    const chunks = await suppressionChunks(entries, this.readHasher());
    const now = this.clock.now();
    let written = 0;
    for (const [i, chunk] of chunks.entries()) {
      // The events go with the first chunk, in its transaction.
      const write =
        i === 0 && webhooks.length
          ? this.batcher.submit(async (tx) => {
              const n = await suppression.upsertSuppressions(tx.client, chunk, options.keepPermanent);
              if (n > 0 || !options.keepPermanent) await hooks.insertWebhookEvents(tx.client, webhooks, now);
              return n;
            })
          : suppression.upsertSuppressions(this.pool, chunk, options.keepPermanent);
      written += await write.catch((err: unknown) => {
        throw asRefusal(err);
      });
    }
    return written;
  }

  async suppressedAmong(tenant: string | null, addresses: readonly string[], now: number): Promise<Set<string>> {
    const byHash = addressesByHash(addresses, this.readHasher());
    if (byHash.size === 0) return new Set();
    const hashes = [...byHash.keys()].map((hex) => Buffer.from(hex, 'hex'));
    const found = await suppression.selectSuppressedAmong(this.pool, tenantKey(tenant), hashes, now);
    return new Set(found.flatMap((hash) => byHash.get(hash) ?? []));
  }

  async getSuppression(tenant: string | null, address: string, now: number): Promise<SuppressionRecord | null> {
    const row = await suppression.selectSuppression(this.pool, tenantKey(tenant), this.readHasher().hash(address), now);
    return row ? toSuppressionRecord(row) : null;
  }

  async listSuppressions(filters: SuppressionFilters, after: SuppressionCursor | null, limit: number): Promise<SuppressionRecord[]> {
    const bounds = suppressionQueryBounds(filters, after, limit, this.readHasher());
    return (await suppression.selectSuppressionPage(this.pool, bounds)).map(toSuppressionRecord);
  }

  async deleteSuppression(tenant: string | null, address: string): Promise<boolean> {
    return suppression.deleteSuppression(this.pool, tenantKey(tenant), this.readHasher().hash(address));
  }

  async purgeExpiredSuppressions(now: number): Promise<number> {
    this.assertOpen();
    return purgeInChunks(SUPPRESSION_PURGE_CHUNK, (limit) => suppression.purgeExpiredSuppressions(this.pool, now, limit));
  }

  async finalResultsOf(tenant: string | null, address: string, limit: number): Promise<DeliveryOutcome[]> {
    this.assertOpen();
    return (await suppression.selectFinalResults(this.pool, tenantKey(tenant), address, limit)).flatMap((row) => toRecipientRow(row).lastOutcome ?? []);
  }

  /*
   * Queue control: pauses and the bulk moves and claims of a selection are single statements on
   * the pool, like claims and holds (queue-control-queries.ts).
   */

  async setPause(pause: QueuePause, now: number): Promise<QueuePause | null> {
    this.assertOpen();
    const values = pauseInsertValues(pause);
    const replaced = await control.upsertPause(this.pool, values, now).catch((err: unknown) => {
      throw asRefusal(err);
    });
    return replaced ? toQueuePause(replaced) : null;
  }

  async deletePause(scope: QueueScope, now: number): Promise<QueuePause | null> {
    this.assertOpen();
    const { kind, value } = scopeKey(scope);
    const ended = await control.deletePause(this.pool, kind, value, now);
    return ended ? toQueuePause(ended) : null;
  }

  async listPauses(now: number): Promise<QueuePause[]> {
    this.assertOpen();
    return (await control.listPauses(this.pool, now)).flatMap((row) => toQueuePause(row) ?? []);
  }

  async purgeEndedPauses(now: number): Promise<number> {
    this.assertOpen();
    return control.purgeEndedPauses(this.pool, now);
  }

  async retryQueued(selection: QueueSelection, now: number, limit: number): Promise<number> {
    this.assertOpen();
    checkBulk('retryQueued', now, limit);
    if (limit === 0) return 0;
    const value = selectionValue(selection);
    // Parked rows first (their own due time moves, they stay parked), then the others, `limit` in all.
    const parked = await control.retryQueued(this.pool, selection.kind, value, now, limit, 'parked_due_at');
    const moved = parked < limit ? await control.retryQueued(this.pool, selection.kind, value, now, limit - parked, 'next_attempt_at') : 0;
    // Due now: the other nodes may take them too.
    if (moved > 0) await sql.notifyWork(this.pool, this.schema);
    return parked + moved;
  }

  async parkPaused(scope: QueueScope, before: number, now: number, limit: number): Promise<number> {
    this.assertOpen();
    checkPark(scope, before, now, limit);
    if (limit === 0) return 0;
    const { kind, value } = scopeKey(scope);
    return control.parkPaused(this.pool, kind, value, before, now, limit);
  }

  async releaseParked(now: number, limit: number, after = 0): Promise<ParkedRelease> {
    this.assertOpen();
    checkRelease(now, limit, after);
    if (limit === 0) return { released: 0, next: after, skipped: 0 };
    const release = await control.releaseParked(this.pool, now, limit, after);
    // Due again: the other nodes may take them too.
    if (release.released > 0) await sql.notifyWork(this.pool, this.schema);
    return release;
  }

  async claimQueued(selection: QueueSelection, options: QueuedClaimOptions): Promise<ClaimedRecipient[]> {
    this.assertOpen();
    checkClaimOptions(options);
    const range = claimRange(options);
    const { now, limit, owner, leaseMs } = options;
    if (limit === 0) return [];
    const token = newLeaseToken();
    const rows = await control.claimQueued(this.pool, selection.kind, selectionValue(selection), range, now, limit, owner, now + leaseMs, token);
    return rows.map((row) => toClaimedRecipient(row, token));
  }

  async lastRecipientId(): Promise<number> {
    this.assertOpen();
    return control.lastRecipientId(this.pool);
  }

  async countDelivering(selection: QueueSelection): Promise<number> {
    this.assertOpen();
    return control.countDelivering(this.pool, selection.kind, selectionValue(selection));
  }

  /*
   * Pool counters and state are single statements on the pool, like claims: a reservation
   * holds its counter's row lock for one statement only, never for a whole write batch.
   */

  async reserveUsage(change: UsageChange, limit: number): Promise<{ ok: boolean; total: number }> {
    this.assertOpen();
    const total = await sql.reserveUsage(this.pool, change, limit);
    if (total !== undefined) return { ok: true, total };
    // Refused; the total is read afterwards and only informs the caller.
    const [current] = await sql.selectUsage(this.pool, [change], change.now);
    return { ok: false, total: current! };
  }

  async addUsage(change: UsageChange): Promise<number> {
    this.assertOpen();
    return sql.addUsage(this.pool, change);
  }

  async getUsage(windows: UsageWindow[], now: number): Promise<number[]> {
    this.assertOpen();
    if (windows.length === 0) return [];
    return sql.selectUsage(this.pool, windows, now);
  }

  async setPoolState(entry: PoolStateEntry): Promise<void> {
    this.assertOpen();
    await sql.upsertPoolState(this.pool, entry);
  }

  async getPoolState(key: string, now: number): Promise<string | null> {
    this.assertOpen();
    return sql.selectPoolState(this.pool, key, now);
  }

  async deletePoolState(key: string): Promise<void> {
    this.assertOpen();
    await sql.deletePoolState(this.pool, key);
  }

  async listPoolState(prefix: string, now: number): Promise<PoolStateEntry[]> {
    this.assertOpen();
    return sql.listPoolState(this.pool, prefix, now);
  }

  async saveBlocklistState(state: BlocklistState): Promise<void> {
    this.assertOpen();
    await blocklists.upsertBlocklistState(this.pool, state);
  }

  async listBlocklistStates(ips: readonly string[] | null): Promise<BlocklistState[]> {
    this.assertOpen();
    return (await blocklists.selectBlocklistStates(this.pool, ips)).map(toBlocklistState);
  }

  async purgeExpiredPoolData(now: number): Promise<number> {
    this.assertOpen();
    return sql.purgeExpiredPoolData(this.pool, now);
  }

  /*
   * Webhooks (webhook-outbox.ts): endpoint changes and results go through the write batcher (one
   * transaction with what else is pending); claims and renewals are single statements on the
   * pool, like the queue's.
   */

  async createWebhook(endpoint: NewWebhookEndpoint): Promise<void> {
    this.assertOpen();
    checkWebhookEndpoint(endpoint);
    const stored = { ...endpoint, eventTypes: normalEventTypes(endpoint.eventTypes) };
    await this.batcher.submit(async (tx) => {
      await hooks.insertWebhook(tx.client, stored);
      await hooks.subscribe(tx.client, [stored.id], stored.tenant ?? '', stored.eventTypes);
    }).catch((err: unknown) => {
      throw asRefusal(err);
    });
  }

  async getWebhook(id: string): Promise<WebhookEndpoint | null> {
    this.assertOpen();
    const row = await hooks.selectWebhook(this.pool, id);
    return row ? toWebhookEndpoint(row) : null;
  }

  async listWebhooks(tenant: string | null | undefined, after: string | null, limit: number): Promise<WebhookEndpoint[]> {
    this.assertOpen();
    return (await hooks.listWebhooks(this.pool, tenant === undefined ? null : (tenant ?? ''), after ?? '', limit)).map(toWebhookEndpoint);
  }

  /**
   * Disabling changes the endpoint alone: its pending rows are held by that (claims leave them).
   * Enabling makes the ones waiting for a later retry due now, a chunk per transaction.
   */
  async updateWebhook(id: string, change: WebhookChange, now: number): Promise<WebhookEndpoint | null> {
    this.assertOpen();
    const changed = await this.batcher.submit(async (tx) => {
      const row = await hooks.selectWebhook(tx.client, id, true);
      if (!row) return null;
      const next = changedWebhookRow(row, change, now);
      checkWebhookEndpoint(toWebhookEndpoint(next));
      await hooks.updateWebhook(tx.client, next);
      const enabling = !row.enabled && Boolean(next.enabled);
      if (enabling) await hooks.markEnabled(tx.client, id, now);
      await hooks.subscribe(tx.client, [id], next.tenant, next.enabled ? (JSON.parse(next.event_types) as string[]) : []);
      return { endpoint: toWebhookEndpoint(next), enabling };
    }).catch((err: unknown) => {
      throw asRefusal(err);
    });
    if (changed?.enabling) await purgeInChunks(WEBHOOK_PURGE_CHUNK, (limit) => hooks.webhookDueNow(this.pool, id, now, limit));
    return changed?.endpoint ?? null;
  }

  /** Unsubscribed and disabled first (nothing new comes, claims leave it), then emptied a chunk per statement. */
  async deleteWebhook(id: string): Promise<boolean> {
    this.assertOpen();
    const found = await this.batcher.submit(async (tx) => {
      const row = await hooks.selectWebhook(tx.client, id, true);
      if (!row) return false;
      await hooks.subscribe(tx.client, [id], row.tenant, []);
      await hooks.updateWebhook(tx.client, { ...row, enabled: false, disabled_reason: 'being deleted', disabled_at: this.clock.now() });
      return true;
    });
    if (!found) return false;
    await purgeInChunks(WEBHOOK_PURGE_CHUNK, (limit) => hooks.deleteWebhookDeliveries(this.pool, id, limit));
    return this.batcher.submit((tx) => hooks.deleteWebhook(tx.client, id));
  }

  async recordWebhookEvents(events: WebhookEvent[]): Promise<void> {
    this.assertOpen();
    webhookEventValues(events);
    if (events.length === 0) return;
    const now = this.clock.now();
    await this.batcher.submit((tx) => hooks.insertWebhookEvents(tx.client, events, now)).catch((err: unknown) => {
      throw asRefusal(err);
    });
  }

  async claimWebhookDeliveries(options: WebhookClaimOptions): Promise<ClaimedWebhookDelivery[]> {
    this.assertOpen();
    const { now, limit, perWebhook, skip, owner, leaseMs } = options;
    if (limit <= 0) return [];
    const token = newWebhookLeaseToken();
    const rows = await hooks.claimWebhookDeliveries(this.pool, { now, limit, perWebhook, skip, owner, lockedUntil: now + leaseMs, token });
    return rows.sort(compareWebhookDue).map((row) => toClaimedWebhookDelivery(row, token));
  }

  async renewWebhookLeases(leases: WebhookLease[], lockedUntil: number): Promise<string[]> {
    this.assertOpen();
    if (leases.length === 0) return [];
    return hooks.renewWebhookLeases(this.pool, leases, lockedUntil);
  }

  async recordWebhookAttempts(results: WebhookAttemptResult[], disableAfterMs: number): Promise<{ recorded: string[]; disabled: DisabledWebhook[] }> {
    this.assertOpen();
    if (results.length === 0) return { recorded: [], disabled: [] };
    const now = this.clock.now();
    return this.batcher.submit(async (tx) => {
      const rows = await hooks.applyWebhookResults(tx.client, results.map((r) => ({ ...r, error: errorText(r.error) })));
      const { succeeded, failed } = resultsByWebhook(rows.filter((r) => r.applied).map((r) => ({ webhookId: r.webhook_id, ok: r.ok, at: r.at })));
      if (succeeded.length + failed.size > 0) await hooks.lockWebhooks(tx.client, [...succeeded, ...failed.keys()]);
      if (succeeded.length > 0) await hooks.clearFailing(tx.client, succeeded);
      const disabled: DisabledWebhook[] = [];
      if (failed.size > 0) {
        await hooks.markFailing(tx.client, failed);
        const off = await hooks.disableFailing(tx.client, [...failed.keys()], now - disableAfterMs, disabledForFailingReason(disableAfterMs), now);
        if (off.length > 0) {
          const ids = off.map((o) => o.id);
          await hooks.subscribe(tx.client, ids, '', []);
          for (const o of off) disabled.push({ id: o.id, tenant: o.tenant === '' ? null : o.tenant, url: o.url, failingSince: o.failing_since });
        }
      }
      return { recorded: rows.map((r) => r.id), disabled };
    });
  }

  async releaseWebhookDeliveries(leases: WebhookLease[]): Promise<void> {
    this.assertOpen();
    if (leases.length === 0) return;
    await this.batcher.submit((tx) => hooks.releaseWebhookDeliveries(tx.client, leases));
  }

  async releaseAllWebhookDeliveries(owner: string): Promise<number> {
    this.assertOpen();
    return this.batcher.submit((tx) => hooks.releaseOwnerWebhookDeliveries(tx.client, owner));
  }

  async listWebhookDeliveries(webhookId: string, query: WebhookDeliveryQuery): Promise<WebhookDelivery[]> {
    this.assertOpen();
    return (await hooks.selectWebhookDeliveries(this.pool, webhookId, query.state, query.after, query.limit)).map(toWebhookDelivery);
  }

  async replayWebhookDelivery(webhookId: string, deliveryId: string, now: number): Promise<WebhookDelivery | null> {
    this.assertOpen();
    return this.batcher.submit(async (tx) => {
      await hooks.replayWebhookDelivery(tx.client, webhookId, deliveryId, now);
      const row = await hooks.selectWebhookDelivery(tx.client, webhookId, deliveryId);
      return row ? toWebhookDelivery(row) : null;
    });
  }

  /** One statement, like the queue's bulk moves: its rows' locks are held for that statement only. */
  async replayWebhookDeliveries(webhookId: string, range: WebhookReplayRange, now: number, limit: number): Promise<number> {
    this.assertOpen();
    return hooks.replayWebhookRange(this.pool, webhookId, range.since, range.until ?? now + 1, range.state, now, limit);
  }

  async purgeWebhookDeliveries(before: number): Promise<number> {
    this.assertOpen();
    return purgeInChunks(WEBHOOK_PURGE_CHUNK, (limit) => hooks.purgeWebhookDeliveries(this.pool, before, limit));
  }

  async webhookOutboxStats(): Promise<WebhookOutboxStats> {
    this.assertOpen();
    const s = await hooks.webhookStats(this.pool);
    return { pending: s.pending, held: s.held, disabledEndpoints: s.disabled };
  }

  /* The oldest-queued gauge's read (queue-age.ts): bounded by an id range. */

  async scanUnfinished(fromId: number, toId: number, now: number): Promise<UnfinishedScan> {
    this.assertOpen();
    // The cheap read first: most ranges the walk meets hold only finished rows.
    const first = await queueAge.firstUnfinishedRecipient(this.pool, fromId, toId);
    if (first === null) return { oldest: null, scheduled: null };
    const oldest = await queueAge.oldestWaitingRecipient(this.pool, first, toId, now);
    const below = oldest?.id ?? toId;
    return { oldest, scheduled: first < below ? await queueAge.scheduledRecipients(this.pool, first, below, now) : null };
  }

  onWork(listener: () => void): () => void {
    if (this.closing) return () => {};
    return this.listener.subscribe(listener);
  }

  /* Personal data (personal-data.ts): postgres-personal-data.ts does the work. */

  async recipientData(address: string, tenant: string | null, limit: number): Promise<RecipientData> {
    return postgresRecipientData(this.personalData(), address, tenant, limit);
  }

  async eraseRecipient(address: string, tenant: string | null, now: number): Promise<{ counts: ErasureCounts; addressHash: string }> {
    return postgresEraseRecipient(this.personalData(), address, tenant, now);
  }

  async purgeErasedMessages(now: number): Promise<number> {
    return postgresPurgeErasedMessages(this.personalData(), now);
  }

  async ping(): Promise<void> {
    this.assertOpen();
    await sql.ping(this.pool);
  }

  /**
   * One committed upsert: fails while the database is read-only (a standby,
   * default_transaction_read_only) or cannot write. The server's disk space is its own to watch.
   */
  async checkWritable(_minFreeBytes: number): Promise<void> {
    this.assertOpen();
    await sql.touchWriteProbe(this.pool, this.clock.now());
  }

  async freeBytes(): Promise<number | null> {
    this.assertOpen();
    return null;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.batcher.close();
      await this.listener.close();
      await this.pool.end();
      this.logger.debug({ event: 'storage.closed' }, 'storage closed');
    })();
    return this.closing;
  }

  private assertOpen(): void {
    if (this.closing) throw new Error('storage is closed');
  }

  private readHasher(): AddressHasher {
    this.assertOpen();
    if (!this.hasher) throw new Error('PostgreSQL store used before migrate()');
    return this.hasher;
  }

  private personalData(): PostgresPersonalDataDeps {
    return { pool: this.pool, hasher: this.readHasher(), listSuppressions: (filters, after, limit) => this.listSuppressions(filters, after, limit) };
  }

  private async runTransaction(ops: readonly WriteOp<PgTransaction>[]): Promise<unknown[]> {
    let tx: PgTransaction | undefined;
    try {
      return await withTransaction(this.pool, async (client) => {
        tx = { client, notify: false, uncertain: false };
        const results: unknown[] = [];
        for (const op of ops) results.push(await op(tx));
        // Delivered to listeners only when the transaction commits.
        if (tx.notify) await sql.notifyWork(client, this.schema);
        return results;
      });
    } catch (err) {
      if (tx && err instanceof UncertainCommitError) tx.uncertain = true;
      throw err;
    }
  }

  /** Whether every message is stored, asked on a fresh connection (a few tries: the server may be restarting). */
  private async allStored(messages: readonly NewMessage[]): Promise<boolean> {
    const ids = messages.map((m) => m.id);
    for (let attempt = 1; ; attempt++) {
      try {
        return (await sql.countMessages(this.pool, ids)) === ids.length;
      } catch (err) {
        if (attempt >= UNCERTAIN_CHECKS) {
          this.logger.error({ event: 'storage.commit.unresolved', messages: ids, err }, 'could not tell whether an uncertain commit stored the messages');
          return false;
        }
        await new Promise((resolve) => setTimeout(resolve, UNCERTAIN_CHECK_PAUSE_MS));
      }
    }
  }
}
