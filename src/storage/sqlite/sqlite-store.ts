import { mkdirSync } from 'node:fs';
import { open, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { systemClock, type Clock } from '../../clock.ts';
import type { Logger } from '../../observability/logger.ts';
import {
  DataRefusedError,
  type AttemptEvent,
  type AttemptResult,
  type AuditCursor,
  type AuditEntry,
  type AuditFilters,
  type AuditRecord,
  type DeferredBacklog,
  type DsnRecord,
  type EnqueueOnceResult,
  type IdempotencyRecord,
  type MessageInfo,
  type MessageQuery,
  type MessageSummary,
  type ClaimedRecipient,
  type ClaimOptions,
  type FollowUp,
  type Lease,
  type NewMessage,
  type PoolStateEntry,
  type RecipientRow,
  type RecipientState,
  type Store,
  type StoredMessage,
  type UsageChange,
  type UsageWindow,
} from '../store.ts';
import {
  checkAttemptResults,
  checkClaimOptions,
  checkMessages,
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
import { UncertainDurabilityError, WriteBatcher, type WriteOp } from '../write-batcher.ts';
import { domainOf } from '../../mail/address.ts';
import type { DeliveryOutcome } from '../../mail/delivery-outcome.ts';
import { migrateSqlite } from './migrations.ts';
import { prepareQueries, type SqliteQueries } from './queries.ts';
import { prepareMessageQueries, type SqliteMessageQueries } from './message-queries.ts';
import { prepareAuditQueries, type SqliteAuditQueries } from './audit-queries.ts';
import { prepareBlocklistQueries, type SqliteBlocklistQueries } from './blocklist-queries.ts';
import { toBlocklistState, type BlocklistState } from '../blocklist-states.ts';
import { prepareQueueControlQueries, type SqliteQueueControlQueries } from './queue-control-queries.ts';
import type { ParkedRelease, PausedScopes, QueuePause, QueuedClaimOptions, QueueScope, QueueSelection } from '../queue-control.ts';
import { checkBulk, checkPark, checkRelease, claimRange, pauseInsertValues, scopeKey, selectionValue, toQueuePause } from '../queue-control-rows.ts';
import { prepareIdempotencyQueries, type SqliteIdempotencyQueries } from './idempotency-queries.ts';
import { IDEMPOTENCY_PURGE_CHUNK, idempotencyInsertValues, toIdempotencyRecord } from '../idempotency-rows.ts';
import { AUDIT_PURGE_CHUNK, auditInsertValues, auditQueryBounds, toAuditRecord } from '../audit-rows.ts';
import { messageQueryBounds, toBacklogGroups, toDsnRecord, toMessageInfo, toMessageSummaries } from '../message-rows.ts';
import type { FeedbackEvent, FeedbackRecipient, FeedbackRecorded, NewFeedbackEvent } from '../feedback-events.ts';
import { feedbackInsertValues, recipientBounce, toFeedbackEvent, toFeedbackRecipient } from '../feedback-rows.ts';
import { prepareFeedbackQueries, type SqliteFeedbackQueries } from './feedback-queries.ts';
import { prepareSuppressionQueries, type SqliteSuppressionQueries } from './suppression-queries.ts';
import {
  AddressHasher,
  addressesByHash,
  SUPPRESSION_PURGE_CHUNK,
  SUPPRESSION_SALT,
  suppressionQueryBounds,
  suppressionChunks,
  tenantKey,
  toSuppressionRecord,
} from '../suppression-rows.ts';
import type { AddSuppressionOptions, NewSuppression, SuppressionCursor, SuppressionFilters, SuppressionRecord } from '../suppressions.ts';
import { insertWebhookEvents, prepareWebhookQueries, type SqliteWebhookQueries } from './webhook-queries.ts';
import { preparePersonalDataQueries, type SqlitePersonalDataQueries } from './personal-data-queries.ts';
import { prepareTlsReportQueries, type SqliteTlsReportQueries } from './tls-report-queries.ts';
import { checkDay, stsPolicyValues, tlsCountValues, toStsPolicy, toTlsCount } from '../tls-report-rows.ts';
import type { StoredStsPolicy, TlsReportEnd, TlsSessionCount } from '../tls-reports.ts';
import { prepareQueueAgeQueries, type SqliteQueueAgeQueries } from './queue-age-queries.ts';
import type { UnfinishedScan } from '../queue-age.ts';
import { sqliteEraseRecipient, sqlitePurgeErasedMessages, sqliteRecipientData, type SqlitePersonalDataDeps } from './sqlite-personal-data.ts';
import type { ErasureCounts, RecipientData } from '../personal-data.ts';
import type { ClaimedWebhookDelivery, DisabledWebhook, NewWebhookEndpoint, WebhookAttemptResult, WebhookChange, WebhookClaimOptions, WebhookDelivery, WebhookDeliveryQuery, WebhookEndpoint, WebhookEvent, WebhookLease, WebhookOutboxStats, WebhookReplayRange } from '../webhook-outbox.ts';
import { WalCheckpointer } from './wal-checkpointer.ts';
import {
  WEBHOOK_PURGE_CHUNK,
  changedWebhookRow,
  checkWebhookEndpoint,
  disabledForFailingReason,
  errorText,
  newWebhookLeaseToken,
  normalEventTypes,
  resultsByWebhook,
  toClaimedWebhookDelivery,
  toWebhookDelivery,
  toWebhookEndpoint,
  webhookEventOfResult,
  webhookEventValues,
} from '../webhook-rows.ts';

export interface SqliteStoreOptions {
  /** Database file; its directory is created when missing. */
  path: string;
  clock?: Clock;
  logger: Logger;
  /** How long a write waits for another process holding the lock (a CLI reading the queue). */
  busyTimeoutMs?: number;
  /** The checkpoint thread's module (wal-checkpoint-thread.ts by default; tests give a stand-in). */
  checkpointThread?: URL;
  /**
   * false: this connection never checkpoints the WAL, because another store of the process does
   * (the daemon's, beside the webhook dispatcher's): one checkpoint thread is enough for a file.
   */
  checkpoints?: boolean;
}

/** Messages purged per transaction, so a large purge never holds the write lock for long. */
const PURGE_CHUNK = 500;

/**
 * The embedded queue: one SQLite file in WAL mode. node:sqlite is synchronous; every write goes
 * through one WriteBatcher, which runs a whole batch (BEGIN IMMEDIATE ... COMMIT) in one
 * synchronous call, so reads on the same connection never see a half-written batch.
 *
 * A resolved write survives kill -9 and power loss: COMMIT hands the batch's WAL frames to the
 * kernel (enough for kill -9), then the WAL file is fsynced before any caller of the batch is
 * answered (enough for power loss), which is what synchronous=FULL does in WAL mode, with one
 * difference: the fsync runs on libuv's thread pool instead of inside COMMIT, so the event loop
 * serves SMTP sessions for the milliseconds a disk takes to sync, and the next batch is written
 * meanwhile (WriteBatcher's `sync`). SQLite still syncs the WAL before each checkpoint and the
 * database file after it (synchronous=NORMAL), so a checkpoint never loses a frame.
 */
export function createSqliteStore(options: SqliteStoreOptions): Store {
  return new SqliteStore(options);
}

class SqliteStore implements Store {
  readonly driver = 'sqlite' as const;
  private readonly db: DatabaseSync;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly batcher: WriteBatcher<SqliteQueries>;
  /** The database file SQLite opened; null in memory. */
  private readonly file: string | null;
  private queries: SqliteQueries | null = null;
  private messageQueries: SqliteMessageQueries | null = null;
  private auditQueries: SqliteAuditQueries | null = null;
  private controlQueries: SqliteQueueControlQueries | null = null;
  private idempotencyQueries: SqliteIdempotencyQueries | null = null;
  private feedbackQueries: SqliteFeedbackQueries | null = null;
  private suppressionQueries: SqliteSuppressionQueries | null = null;
  /** Keys suppressed addresses with the database's salt, read at migrate(). */
  private hasher: AddressHasher | null = null;
  private webhookQueries: SqliteWebhookQueries | null = null;
  private personalDataQueries: SqlitePersonalDataQueries | null = null;
  private tlsQueries: SqliteTlsReportQueries | null = null;
  private blocklistQueries: SqliteBlocklistQueries | null = null;
  private queueAgeQueries: SqliteQueueAgeQueries | null = null;
  private closing: Promise<void> | null = null;
  /** Set by a failed WAL sync or checkpoint: from then on no write is accepted (see refuseWrites). */
  private syncFailure: UncertainDurabilityError | null = null;
  /** Copies the WAL into the database file off the event loop; none for ':memory:'. */
  private readonly checkpointer: WalCheckpointer | null = null;

  constructor(options: SqliteStoreOptions) {
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger.child({ component: 'storage', driver: 'sqlite' });
    if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
    this.db = new DatabaseSync(options.path);
    try {
      this.db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.trunc(options.busyTimeoutMs ?? 5000))}`);
      const mode = (this.db.prepare('PRAGMA journal_mode = WAL').get() as { journal_mode: string }).journal_mode;
      if (mode !== 'wal' && options.path !== ':memory:') {
        throw new Error(`SQLite at ${options.path} refused WAL mode (got ${mode}); use a local filesystem`);
      }
      // NORMAL: COMMIT does not sync; syncWal does, off the event loop, before callers are answered.
      this.db.exec('PRAGMA synchronous = NORMAL');
      this.db.exec('PRAGMA foreign_keys = ON');
      // The WAL is reset after checkpoints; keep it from staying huge after a burst.
      this.db.exec('PRAGMA journal_size_limit = 67108864');
    } catch (err) {
      this.db.close();
      throw err;
    }
    // The file SQLite opened (a symlink or URI resolved), beside which it keeps its WAL.
    const file = this.db.location();
    this.file = file;
    const walPath = file ? `${file}-wal` : null;
    if (file) this.db.exec('PRAGMA wal_autocheckpoint = 0');
    if (file && options.checkpoints !== false) {
      this.checkpointer = new WalCheckpointer({
        file,
        logger: this.logger,
        ...(options.checkpointThread ? { threadFile: options.checkpointThread } : {}),
        fallback: () => {
          if (this.db.isOpen) this.db.exec('PRAGMA wal_autocheckpoint = 1000');
        },
        onFatal: (err) => this.refuseWrites(err, 'storage.checkpoint.failed', 'a WAL checkpoint failed: writes refused until restart'),
      });
    }
    this.batcher = new WriteBatcher<SqliteQueries>({
      run: (ops) => this.runTransaction(ops),
      ...(walPath ? { sync: () => this.syncWal(walPath) } : {}),
      logger: this.logger,
    });
  }

  async migrate(): Promise<void> {
    this.assertOpen();
    migrateSqlite(this.db, this.clock.now(), this.logger);
    this.queries ??= prepareQueries(this.db);
    this.messageQueries ??= prepareMessageQueries(this.db);
    this.auditQueries ??= prepareAuditQueries(this.db);
    this.controlQueries ??= prepareQueueControlQueries(this.db);
    this.idempotencyQueries ??= prepareIdempotencyQueries(this.db);
    this.feedbackQueries ??= prepareFeedbackQueries(this.db);
    this.suppressionQueries ??= prepareSuppressionQueries(this.db);
    const salt = this.db.prepare('SELECT value FROM store_secrets WHERE name = ?').get(SUPPRESSION_SALT) as { value: string } | undefined;
    this.hasher ??= new AddressHasher(salt?.value ?? '');
    this.webhookQueries ??= prepareWebhookQueries(this.db);
    this.personalDataQueries ??= preparePersonalDataQueries(this.db);
    this.tlsQueries ??= prepareTlsReportQueries(this.db);
    this.blocklistQueries ??= prepareBlocklistQueries(this.db);
    this.queueAgeQueries ??= prepareQueueAgeQueries(this.db);
  }

  /* Outbound TLS (tls-reports.ts): MTA-STS policies, TLS-RPT counts and report claims. */

  async getStsPolicy(domain: string): Promise<StoredStsPolicy | null> {
    const row = this.readTls().selectPolicy(domain.toLowerCase());
    return row ? toStsPolicy(row) : null;
  }

  async saveStsPolicy(policy: StoredStsPolicy): Promise<void> {
    const values = stsPolicyValues(policy);
    const t = this.readTls();
    await this.write(() => t.upsertPolicy(values));
  }

  async addTlsSessionCounts(counts: readonly TlsSessionCount[]): Promise<number> {
    const rows = tlsCountValues(counts);
    if (rows.length === 0) return 0;
    const t = this.readTls();
    return this.write(() => t.addCounts(rows));
  }

  async tlsReportsDue(day: string, now: number, limit: number): Promise<string[]> {
    return this.readTls().due(checkDay(day), now, limit);
  }

  async tlsSessionCounts(domain: string, day: string): Promise<TlsSessionCount[]> {
    return this.readTls().selectCounts(domain.toLowerCase(), checkDay(day)).map(toTlsCount);
  }

  async claimTlsReport(domain: string, day: string, owner: string, until: number, now: number): Promise<boolean> {
    const t = this.readTls();
    return this.write(() => t.claim(domain.toLowerCase(), checkDay(day), owner, until, now));
  }

  async finishTlsReport(domain: string, day: string, owner: string, end: TlsReportEnd, now: number): Promise<boolean> {
    const t = this.readTls();
    return this.write(() => t.finish(domain.toLowerCase(), checkDay(day), owner, end, now));
  }

  async purgeTlsReports(beforeDay: string, expiredBefore: number): Promise<number> {
    const t = this.readTls();
    return this.write(() => t.purge(checkDay(beforeDay), expiredBefore));
  }

  async enqueue(messages: NewMessage[]): Promise<void> {
    if (messages.length === 0) return;
    checkMessages(messages);
    const w = this.readWebhooks();
    await this.write((q) => insertMessages(q, this.suppressionQueries!, w, messages));
  }

  /** The key's check and the messages in one write op: in one transaction, and no other op runs between them. */
  async enqueueOnce(messages: NewMessage[], record: IdempotencyRecord, notBefore: number): Promise<EnqueueOnceResult> {
    checkMessages(messages);
    const values = idempotencyInsertValues(record);
    const keys = this.readIdempotency();
    const w = this.readWebhooks();
    return this.write((q): EnqueueOnceResult => {
      if (!keys.claim(values, notBefore)) {
        const existing = keys.select(record.scope, record.key, notBefore);
        if (!existing) throw new Error(`idempotency key ${record.key} is neither free nor held`);
        return { stored: false, existing: toIdempotencyRecord(existing) };
      }
      insertMessages(q, this.suppressionQueries!, w, messages);
      return { stored: true };
    });
  }

  /**
   * A row read off the connection is committed but maybe not yet on disk (its batch waits for
   * the WAL sync) or on a disk that failed to sync: answering a retry from it could promise mail
   * a crash then loses. So a record found is read again through the write path, which answers
   * only after a sync started after that read, and fails once the store refuses writes. The
   * common case, no record, stays a plain read: enqueueOnce settles any race after it.
   */
  async getIdempotencyRecord(scope: string, key: string, notBefore: number): Promise<IdempotencyRecord | null> {
    const keys = this.readIdempotency();
    if (!keys.select(scope, key, notBefore)) return null;
    const row = await this.write(() => keys.select(scope, key, notBefore));
    return row ? toIdempotencyRecord(row) : null;
  }

  async purgeIdempotencyKeys(before: number): Promise<number> {
    const keys = this.readIdempotency();
    return purgeInChunks(IDEMPOTENCY_PURGE_CHUNK, (limit) => this.write(() => keys.purge(before, limit)));
  }

  async claimDue(options: ClaimOptions): Promise<ClaimedRecipient[]> {
    checkClaimOptions(options);
    const { now, limit, owner, leaseMs, paused } = options;
    if (limit === 0) return [];
    const token = newLeaseToken();
    return this.write((q) => {
      const rows = q.selectDue(now, limit, paused);
      for (const row of rows) q.lease(row.id, owner, now + leaseMs, token, now);
      return rows.map((row) => toClaimedRecipient(row, token));
    });
  }

  async renewLeases(leases: Lease[], lockedUntil: number): Promise<number[]> {
    if (leases.length === 0) return [];
    return this.write((q) => leases.filter((l) => !q.renewLease(l.recipientId, l.token, lockedUntil)).map((l) => l.recipientId));
  }

  async nextDueAt(paused?: PausedScopes): Promise<number | null> {
    return this.read().nextDueAt(paused);
  }

  async loadMessage(messageId: string): Promise<StoredMessage | null> {
    const row = this.read().selectMessage(messageId);
    return row ? toStoredMessage(row) : null;
  }

  async recordAttempts(results: AttemptResult[], followUps: FollowUp[] = []): Promise<number[]> {
    const checked = checkAttemptResults(results);
    checkMessages(followUps.map((f) => f.message));
    if (checked.length === 0 && followUps.length === 0) return [];
    const now = this.clock.now();
    const w = this.readWebhooks();
    return this.write((q) => {
      const recorded: number[] = [];
      const applied = new Set<number>();
      const tokens = new Map(checked.map((r) => [r.recipientId, r.token]));
      const heldBack = heldBackResults(followUps, (id) => tokens.has(id) && q.claimedUnder(id, tokens.get(id)!));
      for (const r of checked) {
        const updated = !heldBack.has(r.recipientId) && q.applyAttempt({
          id: r.recipientId,
          token: r.token,
          state: r.newState,
          attemptIncrement: r.countsAsAttempt ? 1 : 0,
          nextAttemptAt: r.newState === 'queued' ? r.nextAttemptAt! : null,
          outcome: r.outcome,
          now,
        });
        if (updated) {
          q.insertEvent(r.recipientId, updated.message_id, updated.attempts, now, r.outcome);
          const type = webhookEventOfResult(r);
          if (type) w.insertAttemptEvent(r.recipientId, type, now, r.outcome);
          applied.add(r.recipientId);
          recorded.push(r.recipientId);
        } else if (q.recordedUnder(r.recipientId, r.token)) {
          recorded.push(r.recipientId);
        }
      }
      insertMessages(q, this.suppressionQueries!, w, followUpsToStore(followUps, applied));
      return recorded;
    }).catch((err: unknown) => {
      throw asRefusal(err);
    });
  }

  async release(leases: Lease[], dueAt: number): Promise<void> {
    if (leases.length === 0) return;
    const now = this.clock.now();
    await this.write((q) => {
      for (const l of leases) q.releaseOne(l.recipientId, l.token, dueAt, now);
    });
  }

  async holdDomains(domains: string[], until: number, maxAgeMs: number, limit: number): Promise<number> {
    const now = this.clock.now();
    return this.write((q) => eachDomain(domains, limit, (domain, left) => q.holdDomain(domain, until, maxAgeMs, now, left)));
  }

  async resumeDomains(domains: string[], until: number, now: number, limit: number): Promise<number> {
    return this.write((q) => eachDomain(domains, limit, (domain, left) => q.resumeDomain(domain, until, now, left)));
  }

  async releaseAll(owner: string, dueAt: number): Promise<number> {
    const now = this.clock.now();
    return this.write((q) => q.releaseOwner(owner, dueAt, now));
  }

  async countByState(): Promise<Record<RecipientState, number>> {
    const counts = emptyCounts();
    for (const { state, n } of this.read().countByState()) counts[state as RecipientState] = n;
    return counts;
  }

  async listRecipients(messageId: string): Promise<RecipientRow[]> {
    return this.read().selectRecipients(messageId).map(toRecipientRow);
  }

  async listEvents(messageId: string): Promise<AttemptEvent[]> {
    return this.read().selectEvents(messageId).map(toAttemptEvent);
  }

  async getMessageInfo(messageId: string): Promise<MessageInfo | null> {
    const row = this.readMessages().selectInfo(messageId);
    return row ? toMessageInfo(row) : null;
  }

  async listMessages(query: MessageQuery): Promise<MessageSummary[]> {
    return toMessageSummaries(this.readMessages().selectPage(messageQueryBounds(query)));
  }

  async findDsns(messageId: string, from: number, to: number): Promise<DsnRecord[]> {
    return this.readMessages().selectDsns(messageId, from, to).map(toDsnRecord);
  }

  async deferredBacklog(top: number): Promise<DeferredBacklog> {
    const b = this.readMessages().selectBacklog(top);
    return { count: b.n, oldestCreatedAt: b.oldest, byDomain: toBacklogGroups(b.byDomain), byPool: toBacklogGroups(b.byPool), byEgressIp: toBacklogGroups(b.byIp) };
  }

  async purgeFinished(before: number): Promise<number> {
    return purgeInChunks(PURGE_CHUNK, (limit) =>
      this.write((q) => {
        const ids = q.selectPurgeable(before, limit);
        for (const id of ids) q.deleteMessage(id);
        return ids.length;
      }),
    );
  }

  async dropFinishedBodies(before: number): Promise<number> {
    return purgeInChunks(PURGE_CHUNK, (limit) =>
      this.write((q) => {
        const ids = q.selectBodiesToDrop(before, limit);
        for (const id of ids) q.dropBody(id);
        return ids.length;
      }),
    );
  }

  /** Through the write batcher like every write: one transaction with whatever else is pending. */
  async recordAudit(entry: AuditEntry): Promise<void> {
    const values = auditInsertValues(entry);
    const audit = this.readAudit();
    await this.write(() => audit.insert(values));
  }

  async listAudit(filters: AuditFilters, after: AuditCursor | null, limit: number): Promise<AuditRecord[]> {
    return this.readAudit().selectPage(auditQueryBounds(filters, after, limit)).map(toAuditRecord);
  }

  async purgeAudit(before: number): Promise<number> {
    const audit = this.readAudit();
    return purgeInChunks(AUDIT_PURGE_CHUNK, (limit) => this.write(() => audit.purge(before, limit)));
  }

  /** The event and the bounce of its recipient in one write op: one transaction. */
  async recordFeedback(event: NewFeedbackEvent, webhook: WebhookEvent | null = null): Promise<FeedbackRecorded> {
    const values = feedbackInsertValues(event);
    if (webhook) webhookEventValues([webhook]);
    const feedback = this.readFeedback();
    const w = this.readWebhooks();
    const now = this.clock.now();
    return this.write((): FeedbackRecorded => {
      if (!feedback.recipientExists(event.recipientId, event.messageId)) {
        throw new DataRefusedError(`recordFeedback: message ${event.messageId} has no recipient ${event.recipientId}`);
      }
      const id = feedback.insert(values);
      if (id === undefined) return { id: feedback.selectIdByFingerprint(event.fingerprint)!, duplicate: true, bounced: false };
      const change = recipientBounce(event, values);
      const bounced = change !== null && feedback.bounceDelivered(change);
      if (webhook) insertWebhookEvents(w, [webhook], now);
      return { id, duplicate: false, bounced };
    }).catch((err: unknown) => {
      throw asRefusal(err);
    });
  }

  async listFeedback(messageId: string): Promise<FeedbackEvent[]> {
    return this.readFeedback().selectByMessage(messageId).map(toFeedbackEvent);
  }

  async findRecipientForFeedback(messageId: string, recipient: number | string): Promise<FeedbackRecipient | null> {
    const row = this.readFeedback().selectRecipient(messageId, recipient);
    return row ? toFeedbackRecipient(row) : null;
  }

  async findMessagesByHeaderId(messageIdHeader: string, limit: number): Promise<string[]> {
    return this.readFeedback().selectMessageIdsByHeader(messageIdHeader, limit);
  }

  /** A chunk per write op (one transaction each), so an import of 100,000 entries never holds the writes up for long. */
  async addSuppressions(entries: readonly NewSuppression[], webhooks: readonly WebhookEvent[] = [], options: AddSuppressionOptions = {}): Promise<number> {
    webhookEventValues(webhooks);
    const chunks = await suppressionChunks(entries, this.readHasher());
    const suppression = this.suppressionQueries!;
    const w = this.readWebhooks();
    const now = this.clock.now();
    let written = 0;
    for (const [i, chunk] of chunks.entries()) {
      // The events go with the first chunk, in its transaction.
      const events = i === 0 ? webhooks : [];
      written += await this.write(() => {
        const n = suppression.upsert(chunk, options.keepPermanent);
        if (events.length && (n > 0 || !options.keepPermanent)) insertWebhookEvents(w, events, now);
        return n;
      }).catch((err: unknown) => {
        throw asRefusal(err);
      });
    }
    return written;
  }

  async suppressedAmong(tenant: string | null, addresses: readonly string[], now: number): Promise<Set<string>> {
    const byHash = addressesByHash(addresses, this.readHasher());
    if (byHash.size === 0) return new Set();
    const found = this.suppressionQueries!.selectAmong(tenantKey(tenant), [...byHash.keys()], now);
    return new Set(found.flatMap((hash) => byHash.get(hash) ?? []));
  }

  async getSuppression(tenant: string | null, address: string, now: number): Promise<SuppressionRecord | null> {
    const row = this.suppressionQueries!.selectOne(tenantKey(tenant), this.readHasher().hash(address), now);
    return row ? toSuppressionRecord(row) : null;
  }

  async listSuppressions(filters: SuppressionFilters, after: SuppressionCursor | null, limit: number): Promise<SuppressionRecord[]> {
    const bounds = suppressionQueryBounds(filters, after, limit, this.readHasher());
    return this.suppressionQueries!.selectPage(bounds).map(toSuppressionRecord);
  }

  async deleteSuppression(tenant: string | null, address: string): Promise<boolean> {
    const key = tenantKey(tenant);
    const hash = this.readHasher().hash(address);
    const suppression = this.suppressionQueries!;
    return this.write(() => suppression.deleteOne(key, hash));
  }

  async purgeExpiredSuppressions(now: number): Promise<number> {
    this.readHasher();
    const suppression = this.suppressionQueries!;
    return purgeInChunks(SUPPRESSION_PURGE_CHUNK, (limit) => this.write(() => suppression.purge(now, limit)));
  }

  async finalResultsOf(tenant: string | null, address: string, limit: number): Promise<DeliveryOutcome[]> {
    const key = tenantKey(tenant);
    this.read();
    return this.suppressionQueries!.selectFinalResults(address, key, limit).flatMap((row) => toRecipientRow(row).lastOutcome ?? []);
  }

  async setPause(pause: QueuePause, now: number): Promise<QueuePause | null> {
    const values = pauseInsertValues(pause);
    const control = this.readControl();
    return this.write(() => {
      const replaced = control.selectPause(values[0], values[1], now);
      control.upsertPause(values);
      return replaced ? toQueuePause(replaced) : null;
    });
  }

  async deletePause(scope: QueueScope, now: number): Promise<QueuePause | null> {
    const { kind, value } = scopeKey(scope);
    const control = this.readControl();
    return this.write(() => {
      const ended = control.selectPause(kind, value, now);
      control.deletePause(kind, value);
      return ended ? toQueuePause(ended) : null;
    });
  }

  async listPauses(now: number): Promise<QueuePause[]> {
    return this.readControl().listPauses(now).flatMap((row) => toQueuePause(row) ?? []);
  }

  async purgeEndedPauses(now: number): Promise<number> {
    const control = this.readControl();
    return this.write(() => control.purgeEnded(now));
  }

  async retryQueued(selection: QueueSelection, now: number, limit: number): Promise<number> {
    checkBulk('retryQueued', now, limit);
    const control = this.readControl();
    if (limit === 0) return 0;
    return this.write(() => control.retry(selection.kind, selectionValue(selection), now, limit));
  }

  async claimQueued(selection: QueueSelection, options: QueuedClaimOptions): Promise<ClaimedRecipient[]> {
    checkClaimOptions(options);
    const { after, through } = claimRange(options);
    const { now, limit, owner, leaseMs } = options;
    const control = this.readControl();
    if (limit === 0) return [];
    const token = newLeaseToken();
    return this.write((q) => {
      const rows = control.selectQueued(selection.kind, selectionValue(selection), limit, now, after, through);
      for (const row of rows) q.lease(row.id, owner, now + leaseMs, token, now);
      return rows.map((row) => toClaimedRecipient(row, token));
    });
  }

  async parkPaused(scope: QueueScope, before: number, now: number, limit: number): Promise<number> {
    checkPark(scope, before, now, limit);
    const control = this.readControl();
    if (limit === 0) return 0;
    const { kind, value } = scopeKey(scope);
    return this.write(() => control.park(kind, value, before, now, limit));
  }

  async releaseParked(now: number, limit: number, after = 0): Promise<ParkedRelease> {
    checkRelease(now, limit, after);
    const control = this.readControl();
    if (limit === 0) return { released: 0, next: after, skipped: 0 };
    return this.write(() => control.release(now, limit, after));
  }

  async lastRecipientId(): Promise<number> {
    return this.readControl().lastRecipientId();
  }

  async countDelivering(selection: QueueSelection): Promise<number> {
    return this.readControl().countDelivering(selection.kind, selectionValue(selection));
  }

  async reserveUsage(change: UsageChange, limit: number): Promise<{ ok: boolean; total: number }> {
    return this.write((q) => {
      const total = q.reserveUsage(change, limit);
      // Refused: the transaction holds the write lock, so this total is the one that refused.
      return total === undefined ? { ok: false, total: q.selectUsage(change.key, change.windowStart, change.now) } : { ok: true, total };
    });
  }

  async addUsage(change: UsageChange): Promise<number> {
    return this.write((q) => q.addUsage(change));
  }

  async getUsage(windows: UsageWindow[], now: number): Promise<number[]> {
    const q = this.read();
    return windows.map((w) => q.selectUsage(w.key, w.windowStart, now));
  }

  async setPoolState(entry: PoolStateEntry): Promise<void> {
    await this.write((q) => q.upsertPoolState(entry));
  }

  async getPoolState(key: string, now: number): Promise<string | null> {
    return this.read().selectPoolState(key, now);
  }

  async deletePoolState(key: string): Promise<void> {
    await this.write((q) => q.deletePoolState(key));
  }

  async listPoolState(prefix: string, now: number): Promise<PoolStateEntry[]> {
    return this.read().listPoolState(prefix, now);
  }

  async saveBlocklistState(state: BlocklistState): Promise<void> {
    const blocklists = this.readBlocklists();
    await this.write(() => blocklists.upsert(state));
  }

  async listBlocklistStates(ips: readonly string[] | null): Promise<BlocklistState[]> {
    return this.readBlocklists().select(ips).map(toBlocklistState);
  }

  async purgeExpiredPoolData(now: number): Promise<number> {
    return this.write((q) => q.purgeExpiredPoolData(now));
  }

  /*
   * Webhooks (webhook-outbox.ts): endpoints and their subscriptions change in one write op; the
   * dispatcher's claims, renewals and results go through the write path like the queue's.
   */

  async createWebhook(endpoint: NewWebhookEndpoint): Promise<void> {
    checkWebhookEndpoint(endpoint);
    const w = this.readWebhooks();
    const stored = { ...endpoint, eventTypes: normalEventTypes(endpoint.eventTypes) };
    await this.write(() => {
      w.insertWebhook(stored);
      w.subscribe(stored.id, stored.tenant ?? '', stored.eventTypes);
    }).catch((err: unknown) => {
      throw asRefusal(err);
    });
  }

  async getWebhook(id: string): Promise<WebhookEndpoint | null> {
    const row = this.readWebhooks().selectWebhook(id);
    return row ? toWebhookEndpoint(row) : null;
  }

  async listWebhooks(tenant: string | null | undefined, after: string | null, limit: number): Promise<WebhookEndpoint[]> {
    return this.readWebhooks().listWebhooks(tenant === undefined ? null : (tenant ?? ''), after ?? '', limit).map(toWebhookEndpoint);
  }

  /**
   * Disabling changes the endpoint alone: its pending rows are held by that (claims leave them).
   * Enabling makes the ones waiting for a later retry due now, a chunk per transaction.
   */
  async updateWebhook(id: string, change: WebhookChange, now: number): Promise<WebhookEndpoint | null> {
    const w = this.readWebhooks();
    const changed = await this.write(() => {
      const row = w.selectWebhook(id);
      if (!row) return null;
      const next = changedWebhookRow(row, change, now);
      checkWebhookEndpoint(toWebhookEndpoint(next));
      w.updateWebhook(next);
      const enabling = !row.enabled && Boolean(next.enabled);
      if (enabling) w.markEnabled(id, now);
      w.subscribe(id, next.tenant, next.enabled ? JSON.parse(next.event_types) : []);
      return { endpoint: toWebhookEndpoint(next), enabling };
    }).catch((err: unknown) => {
      throw asRefusal(err);
    });
    if (changed?.enabling) await purgeInChunks(WEBHOOK_PURGE_CHUNK, (limit) => this.write(() => w.dueNow(id, now, limit)));
    return changed?.endpoint ?? null;
  }

  /** Unsubscribed and disabled first (nothing new comes, claims leave it), then emptied a chunk per transaction. */
  async deleteWebhook(id: string): Promise<boolean> {
    const w = this.readWebhooks();
    const found = await this.write(() => {
      const row = w.selectWebhook(id);
      if (!row) return false;
      w.subscribe(id, row.tenant, []);
      w.updateWebhook({ ...row, enabled: 0, disabled_reason: 'being deleted', disabled_at: this.clock.now() });
      return true;
    });
    if (!found) return false;
    await purgeInChunks(WEBHOOK_PURGE_CHUNK, (limit) => this.write(() => w.deleteDeliveries(id, limit)));
    return this.write(() => w.deleteWebhook(id));
  }

  async recordWebhookEvents(events: WebhookEvent[]): Promise<void> {
    webhookEventValues(events);
    if (events.length === 0) return;
    const w = this.readWebhooks();
    const now = this.clock.now();
    await this.write(() => insertWebhookEvents(w, events, now));
  }

  async claimWebhookDeliveries(options: WebhookClaimOptions): Promise<ClaimedWebhookDelivery[]> {
    const { now, limit, perWebhook, skip, owner, leaseMs } = options;
    const w = this.readWebhooks();
    if (limit <= 0) return [];
    // Chosen by a read, so the write lock is held for the leases alone (a claimer that took a
    // row meanwhile leaves it out of this one's leases), and a poll that finds nothing costs no
    // write transaction.
    const picked = w.pick({ now, limit, perWebhook, skip });
    if (picked.picked.length === 0 && picked.giveBack.length === 0) return [];
    const token = newWebhookLeaseToken();
    const leased = await this.write(() => w.lease(picked, { now, owner, lockedUntil: now + leaseMs, token }));
    // Oldest due first already: leased and read back in the order picked.
    return w.withEvents(leased).map((row) => toClaimedWebhookDelivery(row, token));
  }

  async renewWebhookLeases(leases: WebhookLease[], lockedUntil: number): Promise<string[]> {
    if (leases.length === 0) return [];
    const w = this.readWebhooks();
    return this.write(() => leases.filter((l) => !w.renewLease(l.id, l.token, lockedUntil)).map((l) => l.id));
  }

  async recordWebhookAttempts(results: WebhookAttemptResult[], disableAfterMs: number): Promise<{ recorded: string[]; disabled: DisabledWebhook[] }> {
    if (results.length === 0) return { recorded: [], disabled: [] };
    const w = this.readWebhooks();
    const now = this.clock.now();
    return this.write(() => {
      const recorded: string[] = [];
      const applied: Array<{ webhookId: string; ok: boolean; at: number }> = [];
      for (const r of results) {
        const webhookId = w.applyResult({ ...r, error: errorText(r.error) });
        if (webhookId !== undefined) {
          recorded.push(r.id);
          applied.push({ webhookId, ok: r.ok, at: r.at });
        } else if (w.recordedUnder(r.id, r.token)) {
          recorded.push(r.id);
        }
      }
      const { succeeded, failed } = resultsByWebhook(applied);
      for (const id of succeeded) w.clearFailing(id);
      const disabled: DisabledWebhook[] = [];
      for (const [id, at] of failed) {
        w.markFailing(id, at);
        const off = w.disableFailing(id, now - disableAfterMs, disabledForFailingReason(disableAfterMs), now);
        if (!off) continue;
        w.subscribe(id, off.tenant, []);
        disabled.push({ id, tenant: off.tenant === '' ? null : off.tenant, url: off.url, failingSince: off.failing_since });
      }
      return { recorded, disabled };
    });
  }

  async releaseWebhookDeliveries(leases: WebhookLease[]): Promise<void> {
    if (leases.length === 0) return;
    const w = this.readWebhooks();
    await this.write(() => {
      for (const l of leases) w.releaseOne(l.id, l.token);
    });
  }

  async releaseAllWebhookDeliveries(owner: string): Promise<number> {
    const w = this.readWebhooks();
    return this.write(() => w.releaseOwner(owner));
  }

  async listWebhookDeliveries(webhookId: string, query: WebhookDeliveryQuery): Promise<WebhookDelivery[]> {
    return this.readWebhooks().selectDeliveries(webhookId, query.state, query.after, query.limit).map(toWebhookDelivery);
  }

  async replayWebhookDelivery(webhookId: string, deliveryId: string, now: number): Promise<WebhookDelivery | null> {
    const w = this.readWebhooks();
    return this.write(() => {
      w.replayOne(webhookId, deliveryId, now);
      const row = w.selectDelivery(webhookId, deliveryId);
      return row ? toWebhookDelivery(row) : null;
    });
  }

  async replayWebhookDeliveries(webhookId: string, range: WebhookReplayRange, now: number, limit: number): Promise<number> {
    const w = this.readWebhooks();
    return this.write(() => w.replayRange(webhookId, range.since, range.until ?? now + 1, range.state, now, limit));
  }

  async purgeWebhookDeliveries(before: number): Promise<number> {
    const w = this.readWebhooks();
    return purgeInChunks(WEBHOOK_PURGE_CHUNK, (limit) => this.write(() => w.purge(before, limit)));
  }

  async webhookOutboxStats(): Promise<WebhookOutboxStats> {
    const s = this.readWebhooks().stats();
    return { pending: s.pending, held: s.held, disabledEndpoints: s.disabled };
  }

  /* The oldest-queued gauge's read (queue-age.ts): bounded by an id range. */

  async scanUnfinished(fromId: number, toId: number, now: number): Promise<UnfinishedScan> {
    this.read();
    return this.queueAgeQueries!.scanUnfinished(fromId, toId, now);
  }

  /* Personal data (personal-data.ts): sqlite-personal-data.ts does the work, through this store's write path. */

  async recipientData(address: string, tenant: string | null, limit: number): Promise<RecipientData> {
    return sqliteRecipientData(this.personalData(), address, tenant, limit);
  }

  async eraseRecipient(address: string, tenant: string | null, now: number): Promise<{ counts: ErasureCounts; addressHash: string }> {
    return sqliteEraseRecipient(this.personalData(), address, tenant, now);
  }

  async purgeErasedMessages(now: number): Promise<number> {
    return sqlitePurgeErasedMessages(this.personalData(), now);
  }

  /** Single node: work is only enqueued by this process, whose queue calls the scheduler directly. */
  onWork(_listener: () => void): () => void {
    return () => {};
  }

  async ping(): Promise<void> {
    this.assertOpen();
    this.read().ping();
  }

  /**
   * A durable commit (BEGIN IMMEDIATE ... COMMIT, fsynced) and room for more: fails on a full disk, a
   * read-only file or a held write lock. The commit alone cannot tell a full disk: after a checkpoint
   * SQLite writes the WAL over its own old frames, so a tiny write succeeds on a disk with no room
   * left for a message; hence the free space.
   */
  async checkWritable(minFreeBytes: number): Promise<void> {
    const now = this.clock.now();
    await this.write((q) => q.touchWriteProbe(now));
    const free = await this.freeBytes();
    if (free !== null && free < minFreeBytes) throw new Error(`disk full: ${free} bytes free beside ${this.file}, ${minFreeBytes} needed`);
  }

  async freeBytes(): Promise<number | null> {
    this.assertOpen();
    if (!this.file) return null;
    const fs = await statfs(dirname(this.file));
    return fs.bavail * fs.bsize;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.batcher.close();
      // The thread's connection first: the last one to close checkpoints the WAL and removes it.
      await this.checkpointer?.close();
      this.db.close();
      this.logger.debug({ event: 'storage.closed' }, 'storage closed');
    })();
    return this.closing;
  }

  private write<T>(op: (q: SqliteQueries) => T): Promise<Awaited<T>> {
    this.read();
    return this.batcher.submit(op);
  }

  private read(): SqliteQueries {
    this.assertOpen();
    if (!this.queries) throw new Error('SQLite store used before migrate()');
    return this.queries;
  }

  private readMessages(): SqliteMessageQueries {
    this.read();
    return this.messageQueries!;
  }

  private readBlocklists(): SqliteBlocklistQueries {
    this.read();
    return this.blocklistQueries!;
  }

  private readAudit(): SqliteAuditQueries {
    this.read();
    return this.auditQueries!;
  }

  private readControl(): SqliteQueueControlQueries {
    this.read();
    return this.controlQueries!;
  }

  private readHasher(): AddressHasher {
    this.read();
    return this.hasher!;
  }

  private readIdempotency(): SqliteIdempotencyQueries {
    this.read();
    return this.idempotencyQueries!;
  }

  private readFeedback(): SqliteFeedbackQueries {
    this.read();
    return this.feedbackQueries!;
  }

  private readTls(): SqliteTlsReportQueries {
    this.read();
    return this.tlsQueries!;
  }

  private readWebhooks(): SqliteWebhookQueries {
    this.read();
    return this.webhookQueries!;
  }

  private personalData(): SqlitePersonalDataDeps {
    const q = this.read();
    return {
      q,
      messages: this.messageQueries!,
      feedback: this.feedbackQueries!,
      pd: this.personalDataQueries!,
      hasher: this.hasher!,
      write: (op) => this.write(op),
      listSuppressions: (filters, after, limit) => this.listSuppressions(filters, after, limit),
    };
  }

  private assertOpen(): void {
    if (this.closing) throw new Error('storage is closed');
  }

  /** The transaction is synchronous on purpose: nothing else can run on this connection while it is open. */
  private async runTransaction(ops: readonly WriteOp<SqliteQueries>[]): Promise<unknown[]> {
    const checkpointing = this.checkpointer?.beforeWrite();
    if (checkpointing) await checkpointing;
    // After the wait: a sync may have failed meanwhile.
    if (this.syncFailure) throw this.syncFailure;
    const q = this.queries!;
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const results = ops.map((op) => op(q));
      this.db.exec('COMMIT');
      this.checkpointer?.committed();
      return results;
    } catch (err) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK');
      throw err;
    }
  }

  /**
   * fsync of the WAL file, opened anew each time so that it is always the file SQLite writes (a
   * descriptor kept open would still point at a WAL that was removed and made again).
   *
   * A sync that fails ends writing for this process: the batches it covered are committed and
   * later ones would be written after frames the disk may not have (Linux reports a failed
   * writeback once, so a later sync could succeed over them), which a crash would cut off,
   * acknowledged or not. So every write from then on fails, /readyz turns 503, and the operator
   * restarts the daemon, whose SQLite recovery reads back what the disk really holds.
   */
  private async syncWal(walPath: string): Promise<void> {
    if (this.syncFailure) throw this.syncFailure;
    try {
      const wal = await open(walPath, 'r');
      try {
        await wal.sync();
      } finally {
        await wal.close();
      }
    } catch (err) {
      throw this.refuseWrites(new Error(`the SQLite WAL could not be synced (${(err as Error).message})`, { cause: err }), 'storage.sync.failed', 'the WAL could not be synced after a commit: writes refused until restart');
    }
  }

  /** From now on no write is accepted: what the disk holds is uncertain until SQLite reads it back at a restart. */
  private refuseWrites(err: Error, event: string, message: string): UncertainDurabilityError {
    this.syncFailure ??= new UncertainDurabilityError(`${err.message}; no write is taken until the daemon restarts`, { cause: err.cause ?? err });
    this.logger.fatal({ event, err }, message);
    return this.syncFailure;
  }
}

/** SQLite's primary result codes for data it refuses: SQLITE_TOOBIG, SQLITE_CONSTRAINT, SQLITE_MISMATCH. */
const REFUSED_DATA = new Set([18, 19, 20]);

/** An error of the data itself as DataRefusedError (repeating the statement cannot help); others as they are. */
function asRefusal(err: unknown): unknown {
  const errcode = (err as { errcode?: unknown } | null)?.errcode;
  return typeof errcode === 'number' && REFUSED_DATA.has(errcode & 0xff) ? new DataRefusedError((err as Error).message, { cause: err }) : err;
}

/** Runs a bulk statement per domain until `limit` rows moved in all; returns how many did. */
function eachDomain(domains: readonly string[], limit: number, move: (domain: string, left: number) => number): number {
  let moved = 0;
  for (const domain of new Set(domains)) {
    if (moved >= limit) break;
    moved += move(domain, limit - moved);
  }
  return moved;
}

/** Messages, their recipients (those suppressed under the drop action final at once), and the webhook events of those someone listens to. */
function insertMessages(q: SqliteQueries, suppression: SqliteSuppressionQueries, w: SqliteWebhookQueries, messages: readonly NewMessage[]): void {
  for (const m of messages) {
    q.insertMessage(m);
    for (const rcpt of m.recipients) q.insertRecipient(m.id, rcpt, domainOf(rcpt), m.dueAt, m.createdAt);
    w.insertAccepted(m.id);
    // Suppressed under the drop action: final at once, with the event that says why.
    for (const { recipient, outcome } of m.suppressed ?? []) {
      for (const id of suppression.settleRecipient(m.id, recipient, outcome, m.createdAt)) {
        q.insertEvent(id, m.id, 0, m.createdAt, outcome);
        w.insertAttemptEvent(id, 'recipient.suppressed', m.createdAt, outcome);
      }
    }
  }
}
