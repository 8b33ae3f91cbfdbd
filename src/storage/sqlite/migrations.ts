import type { DatabaseSync } from 'node:sqlite';
import type { Logger } from '../../observability/logger.ts';

interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * Schema history of the SQLite backend. Append only: a released migration is never edited.
 * Times are integer milliseconds since the epoch.
 */
export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'queue tables',
    sql: `
      CREATE TABLE messages (
        id                TEXT PRIMARY KEY NOT NULL,
        sender            TEXT NOT NULL,
        message_id_header TEXT,
        size              INTEGER NOT NULL,
        body              BLOB NOT NULL,
        submitter         TEXT,
        source            TEXT NOT NULL CHECK (source IN ('smtp', 'http', 'dsn')),
        client_address    TEXT,
        created_at        INTEGER NOT NULL
      ) STRICT;
      -- purgeFinished: only messages created before the cut-off can have finished before it.
      CREATE INDEX messages_created_at ON messages (created_at);

      CREATE TABLE recipients (
        -- AUTOINCREMENT: ids are never reused after a purge, so a stale id cannot hit a new row.
        id                INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id        TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        recipient         TEXT NOT NULL,
        domain            TEXT NOT NULL,
        state             TEXT NOT NULL CHECK (state IN ('queued', 'delivering', 'delivered', 'bounced')),
        attempts          INTEGER NOT NULL DEFAULT 0,
        next_attempt_at   INTEGER,
        locked_by         TEXT,
        locked_until      INTEGER,
        last_disposition  TEXT,
        last_code         INTEGER,
        last_enhanced     TEXT,
        last_response     TEXT,
        last_stage        TEXT,
        last_bounce_class TEXT,
        last_remote_host  TEXT,
        last_egress_ip    TEXT,
        created_at        INTEGER NOT NULL,
        updated_at        INTEGER NOT NULL,
        CHECK (state <> 'queued' OR next_attempt_at IS NOT NULL),
        CHECK (state <> 'delivering' OR (locked_by IS NOT NULL AND locked_until IS NOT NULL))
      ) STRICT;
      -- claimDue (state = 'queued' ... ORDER BY next_attempt_at, and the few 'delivering' rows
      -- checked for an expired lease), nextDueAt, countByState, releaseAll.
      CREATE INDEX recipients_due ON recipients (state, next_attempt_at);
      CREATE INDEX recipients_message ON recipients (message_id);

      CREATE TABLE events (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        recipient_id INTEGER NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
        message_id   TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        attempt      INTEGER NOT NULL,
        at           INTEGER NOT NULL,
        disposition  TEXT NOT NULL,
        code         INTEGER,
        enhanced     TEXT,
        response     TEXT NOT NULL,
        stage        TEXT NOT NULL,
        bounce_class TEXT NOT NULL,
        remote_host  TEXT,
        egress_ip    TEXT
      ) STRICT;
      CREATE INDEX events_message ON events (message_id, at);
      -- Cascading deletes from recipients look events up by recipient.
      CREATE INDEX events_recipient ON events (recipient_id);
    `,
  },
  {
    version: 2,
    name: 'egress IP pool counters and state',
    sql: `
      -- Warm-up usage per (key, fixed window); reserveUsage is one upsert on the primary key.
      CREATE TABLE usage_counters (
        key          TEXT NOT NULL,
        window_start INTEGER NOT NULL,
        count        INTEGER NOT NULL CHECK (count >= 0),
        expires_at   INTEGER NOT NULL,
        PRIMARY KEY (key, window_start)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX usage_counters_expires_at ON usage_counters (expires_at);

      -- Suspensions, plan restarts: few rows, read by key or key prefix.
      CREATE TABLE pool_state (
        key        TEXT PRIMARY KEY NOT NULL,
        value      TEXT NOT NULL,
        expires_at INTEGER
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX pool_state_expires_at ON pool_state (expires_at);
    `,
  },
  {
    version: 3,
    name: 'egress pool of each message',
    sql: `
      -- Chosen at acceptance (X-Rookery-Pool, the user's pool, the sender domain); older rows use "default".
      ALTER TABLE messages ADD COLUMN pool TEXT NOT NULL DEFAULT 'default';
    `,
  },
  {
    version: 4,
    name: 'lease tokens and the write probe',
    sql: `
      -- The token of the row's latest claim: results and releases apply only under it. Kept after
      -- a result is recorded, so recording the same result again is recognised; cleared on release.
      ALTER TABLE recipients ADD COLUMN lease_token TEXT;

      -- One row, rewritten by each readiness probe: a write that commits proves the disk has room
      -- and the database is writable.
      CREATE TABLE write_probe (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        at INTEGER NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 5,
    name: 'queued recipients by domain',
    sql: `
      -- holdDomains / resumeDomains: the queued rows of a destination site's domains, in bulk.
      CREATE INDEX recipients_domain ON recipients (domain, state, next_attempt_at);
    `,
  },
  {
    version: 6,
    name: 'leases by end',
    sql: `
      -- claimDue and the next due time look for leases that ran out; without this they read
      -- every row in flight on each claim.
      CREATE INDEX recipients_lease_end ON recipients (locked_until) WHERE state = 'delivering';
    `,
  },
  {
    version: 7,
    name: 'audit log of the control API',
    sql: `
      -- Every mutating request and failed authentication of /v1 (never a token). change is the
      -- JSON of {before, after} where a route gives it.
      CREATE TABLE audit (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        at             INTEGER NOT NULL,
        actor          TEXT,
        tenant         TEXT,
        client_address TEXT NOT NULL,
        method         TEXT NOT NULL,
        route          TEXT NOT NULL,
        target         TEXT,
        change         TEXT,
        status         INTEGER NOT NULL,
        outcome        TEXT NOT NULL
      ) STRICT;
      -- GET /v1/audit newest first, and the retention purge by age.
      CREATE INDEX audit_at ON audit (at, id);
      -- GET /v1/audit?actor=: one token's entries, newest first.
      CREATE INDEX audit_actor ON audit (actor, at, id);
    `,
  },
  {
    version: 8,
    name: 'tenant of each message',
    sql: `
      -- The tenant a message was sent for (NULL: none); GET /v1/messages for a tenant's token
      -- walks its messages newest first.
      ALTER TABLE messages ADD COLUMN tenant TEXT;
      CREATE INDEX messages_tenant_created_at ON messages (tenant, created_at, id) WHERE tenant IS NOT NULL;
    `,
  },
  {
    version: 9,
    name: 'queue pauses',
    sql: `
      -- An operator's pause of a destination domain, an egress pool or an egress IP, one per scope,
      -- read by every node a few seconds apart. kind has no CHECK: a later scope (tenant) is one
      -- more value, not a rebuilt table; a kind a node does not know is ignored by it.
      CREATE TABLE queue_pauses (
        kind       TEXT NOT NULL,
        value      TEXT NOT NULL,
        reason     TEXT NOT NULL,
        paused_by  TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        -- NULL: until resumed.
        ends_at    INTEGER,
        PRIMARY KEY (kind, value)
      ) STRICT, WITHOUT ROWID;
    `,
  },
  {
    version: 10,
    name: 'messages sent over HTTP: schedule, tags, metadata, idempotency keys',
    sql: `
      -- A scheduled send's time (the first attempt's, and where delivery.maxAge starts); NULL: at once.
      ALTER TABLE messages ADD COLUMN send_at INTEGER;
      -- JSON: an array of strings, an object of strings; NULL: none given.
      ALTER TABLE messages ADD COLUMN tags TEXT;
      ALTER TABLE messages ADD COLUMN metadata TEXT;

      -- Idempotency-Key of POST /v1/messages and /batch: the first answer, stored in the same
      -- transaction as the messages it reports; the primary key decides between two requests.
      CREATE TABLE idempotency_keys (
        scope        TEXT NOT NULL,
        key          TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        status       INTEGER NOT NULL,
        response     TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        PRIMARY KEY (scope, key)
      ) STRICT, WITHOUT ROWID;
      -- The retention purge by age.
      CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
    `,
  },
  {
    version: 11,
    name: 'suppression list',
    sql: `
      -- Secrets made once per database, read at open: the salt that keys suppressed addresses.
      CREATE TABLE store_secrets (
        name  TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
      ) STRICT, WITHOUT ROWID;
      INSERT INTO store_secrets (name, value) VALUES ('suppression-address-salt', lower(hex(randomblob(32))));

      -- One entry per tenant ('' for mail of no tenant) and address, keyed by HMAC-SHA256 of the
      -- lower-cased address: address may be nulled (erasure) and the opt-out stays. reason has no
      -- CHECK (a later reason is one more value, not a rebuilt table); the store checks it.
      -- source is the JSON of the event that caused the entry.
      CREATE TABLE suppressions (
        tenant       TEXT NOT NULL,
        address_hash BLOB NOT NULL,
        address      TEXT,
        reason       TEXT NOT NULL,
        source       TEXT,
        created_at   INTEGER NOT NULL,
        -- NULL: never expires.
        expires_at   INTEGER,
        PRIMARY KEY (tenant, address_hash)
      ) STRICT, WITHOUT ROWID;
      -- GET /v1/suppressions and the export: a tenant's entries newest first, walked from the cursor.
      CREATE INDEX suppressions_listing ON suppressions (tenant, created_at, address_hash);
      -- An address's entries over every tenant (the listing's address filter, erasure).
      CREATE INDEX suppressions_address ON suppressions (address_hash);
      -- The retention sweeper's purge of expired entries.
      CREATE INDEX suppressions_expires_at ON suppressions (expires_at) WHERE expires_at IS NOT NULL;

      -- The automatic rules count an address's consecutive permanent failures from its final
      -- results, newest first. Partial: a row enters it when it is final, so accepting mail
      -- (queued rows) never pays for it.
      CREATE INDEX recipients_final_address ON recipients (lower(recipient), updated_at) WHERE state IN ('delivered', 'bounced');
    `,
  },
  {
    version: 12,
    name: 'webhooks: endpoints, subscriptions, outbox',
    sql: `
      -- Tenants' endpoints. tenant '' is mail of no tenant; event_types is a JSON array; secret is
      -- the signing key (whsec_...), needed in clear to sign.
      CREATE TABLE webhooks (
        id              TEXT PRIMARY KEY NOT NULL,
        tenant          TEXT NOT NULL,
        url             TEXT NOT NULL,
        event_types     TEXT NOT NULL,
        description     TEXT,
        secret          TEXT NOT NULL,
        enabled         INTEGER NOT NULL,
        disabled_reason TEXT,
        disabled_at     INTEGER,
        -- The first failure since the last success: the endpoint is disabled after failing for 3 days.
        failing_since   INTEGER,
        created_at      INTEGER NOT NULL,
        updated_at      INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX webhooks_tenant ON webhooks (tenant, id);

      -- One row per (tenant, event type) an enabled endpoint listens to: the writes that emit
      -- events join it, so an event nobody listens to costs one index probe and writes nothing.
      CREATE TABLE webhook_subscriptions (
        tenant     TEXT NOT NULL,
        event_type TEXT NOT NULL,
        webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
        PRIMARY KEY (tenant, event_type, webhook_id)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX webhook_subscriptions_webhook ON webhook_subscriptions (webhook_id);

      -- The outbox: one row per event and subscribed endpoint, written in the transaction of the
      -- change that caused it. The event's data is copied in (tags and metadata from the message,
      -- which retention may purge first). No foreign key to messages for the same reason.
      CREATE TABLE webhook_deliveries (
        id              TEXT PRIMARY KEY NOT NULL,
        webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
        event_type      TEXT NOT NULL,
        tenant          TEXT NOT NULL,
        message_id      TEXT,
        recipient       TEXT,
        occurred_at     INTEGER NOT NULL,
        egress_ip       TEXT,
        reply_code      INTEGER,
        reply_enhanced  TEXT,
        reply_text      TEXT,
        remote_host     TEXT,
        bounce_class    TEXT,
        attempt         INTEGER,
        tags            TEXT,
        metadata        TEXT,
        data            TEXT,
        state           TEXT NOT NULL CHECK (state IN ('pending', 'delivering', 'delivered', 'failed', 'held')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        retry_until     INTEGER NOT NULL,
        locked_by       TEXT,
        locked_until    INTEGER,
        lease_token     TEXT,
        last_attempt_at INTEGER,
        last_status     INTEGER,
        last_error      TEXT,
        finished_at     INTEGER,
        created_at      INTEGER NOT NULL,
        CHECK (state <> 'delivering' OR (locked_by IS NOT NULL AND locked_until IS NOT NULL))
      ) STRICT;
      -- The dispatcher's claims: due rows in order, and leases that ran out.
      CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id) WHERE state = 'pending';
      CREATE INDEX webhook_deliveries_lease_end ON webhook_deliveries (locked_until) WHERE state = 'delivering';
      -- An endpoint's history newest first, its replays by range, holding and releasing its rows.
      CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at, id);
      -- The retention purge of finished rows.
      CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished_at) WHERE finished_at IS NOT NULL;
    `,
  },
  {
    version: 13,
    name: 'feedback events: asynchronous bounces, complaints, unsubscribes',
    sql: `
      -- What came back about a recipient after delivery (src/feedback/). details is JSON text.
      -- fingerprint identifies the report: one delivered twice (the remote retried after a 451)
      -- is recorded once. kind has no CHECK, as queue_pauses: a later kind is one more value.
      CREATE TABLE feedback_events (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id   TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        recipient_id INTEGER NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
        recipient    TEXT NOT NULL,
        kind         TEXT NOT NULL,
        at           INTEGER NOT NULL,
        action       TEXT,
        code         INTEGER,
        enhanced     TEXT,
        diagnostic   TEXT,
        bounce_class TEXT,
        reporter     TEXT,
        details      TEXT NOT NULL,
        egress_ip    TEXT,
        fingerprint  TEXT NOT NULL UNIQUE
      ) STRICT;
      -- GET /v1/messages/{id}: a message's events oldest first.
      CREATE INDEX feedback_events_message ON feedback_events (message_id, at, id);
      -- Cascading deletes from recipients look events up by recipient.
      CREATE INDEX feedback_events_recipient ON feedback_events (recipient_id);
      -- A complaint names its original by the Message-ID header of the copy it attaches.
      CREATE INDEX messages_message_id_header ON messages (message_id_header) WHERE message_id_header IS NOT NULL;
    `,
  },
  {
    version: 14,
    name: 'message bodies still kept',
    sql: `
      -- dropFinishedBodies (storage.bodyRetention): the messages whose body is still there, oldest
      -- first, so each sweep reads only those, not every message the retention period keeps.
      CREATE INDEX messages_body_kept ON messages (created_at) WHERE length(body) > 0;
    `,
  },
  {
    version: 15,
    name: 'messages an erasure left pending',
    sql: `
      -- A message an erasure took a recipient's rows from while another recipient still waited:
      -- its body names the erased address, so it goes as soon as the others are final
      -- (purgeErasedMessages). erased_at bounds the search for the DSNs made about it since.
      CREATE TABLE erasure_pending (
        message_id TEXT PRIMARY KEY NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        erased_at  INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;
    `,
  },
  {
    version: 16,
    name: 'outbound TLS: MTA-STS policies, TLS-RPT session counts and reports',
    sql: `
      -- MTA-STS policies as fetched (RFC 8461), shared so every node applies the same one and
      -- one fetch serves all. mx and lines are JSON arrays of text.
      CREATE TABLE mta_sts_policies (
        domain     TEXT PRIMARY KEY NOT NULL,
        policy_id  TEXT NOT NULL,
        mode       TEXT NOT NULL,
        mx         TEXT NOT NULL,
        max_age    INTEGER NOT NULL,
        lines      TEXT NOT NULL,
        fetched_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;
      -- TLS-RPT (RFC 8460) session counts per UTC day and policy domain; failures keep where
      -- (empty strings for successes, which are only counted).
      CREATE TABLE tls_session_counts (
        day           TEXT NOT NULL,
        policy_domain TEXT NOT NULL,
        policy_type   TEXT NOT NULL,
        policy_id     TEXT NOT NULL,
        result        TEXT NOT NULL,
        sending_ip    TEXT NOT NULL,
        receiving_ip  TEXT NOT NULL,
        receiving_mx  TEXT NOT NULL,
        policy_lines  TEXT NOT NULL,
        policy_mx     TEXT NOT NULL,
        sessions      INTEGER NOT NULL,
        PRIMARY KEY (day, policy_domain, policy_type, policy_id, result, sending_ip, receiving_ip, receiving_mx)
      ) STRICT, WITHOUT ROWID;
      -- One report per domain and day: claimed by a node (until claimed_until), then sent or skipped.
      CREATE TABLE tls_reports (
        day           TEXT NOT NULL,
        policy_domain TEXT NOT NULL,
        state         TEXT NOT NULL CHECK (state IN ('claimed', 'sent', 'skipped')),
        claimed_by    TEXT NOT NULL,
        claimed_until INTEGER NOT NULL,
        finished_at   INTEGER,
        PRIMARY KEY (day, policy_domain)
      ) STRICT, WITHOUT ROWID;
      -- The events' TLS: the session's version, cipher, verification and policy (JSON), null without one.
      ALTER TABLE events ADD COLUMN tls TEXT;
    `,
  },
  {
    version: 17,
    name: 'blocklist states',
    sql: `
      -- What the blocklist watch last found for each (egress IP, list name): codes is a JSON
      -- array of the A answers; times in ms. One row per pair, replaced by each lookup.
      CREATE TABLE blocklist_states (
        ip              TEXT NOT NULL,
        list            TEXT NOT NULL,
        listed          INTEGER NOT NULL CHECK (listed IN (0, 1)),
        codes           TEXT NOT NULL,
        reason          TEXT,
        first_listed_at INTEGER,
        last_checked_at INTEGER,
        last_error      TEXT,
        PRIMARY KEY (ip, list)
      ) STRICT, WITHOUT ROWID;
    `,
  },
  {
    version: 19,
    name: 'webhook deliveries claimed per endpoint',
    sql: `
      -- Claims look up each enabled endpoint's due rows, so a disabled endpoint's backlog (held:
      -- pending rows of a disabled endpoint) is never scanned or rewritten, and disabling or
      -- enabling an endpoint changes one row however many deliveries it has.
      CREATE INDEX webhook_deliveries_endpoint_due ON webhook_deliveries (webhook_id, next_attempt_at, id) WHERE state = 'pending';
      DROP INDEX webhook_deliveries_due;
      UPDATE webhook_deliveries SET state = 'pending' WHERE state = 'held';
      -- When the endpoint was last enabled: a delivery claimed after it has its retry window from then at least.
      ALTER TABLE webhooks ADD COLUMN enabled_at INTEGER;
    `,
  },
  {
    version: 20,
    name: 'parked mail of paused scopes',
    sql: `
      -- The queued rows of a paused domain, pool or tenant are parked: next_attempt_at is set past
      -- any real time (PARKED_DUE_AT), so no claim or next-due read walks them, and their own due
      -- time is kept here until the pause ends. NULL for every row that is not parked. A release
      -- reads the parked rows through recipients_due: they share one due time, so in id order.
      ALTER TABLE recipients ADD COLUMN parked_due_at INTEGER;
      -- A retry of a paused scope: the parked rows that wait past their own time.
      CREATE INDEX recipients_parked ON recipients (parked_due_at) WHERE parked_due_at IS NOT NULL;
    `,
  },
  {
    version: 21,
    name: 'webhook endpoints taking several events per request',
    sql: `
      -- At most this many events in one POST: 1 posts each event alone; more posts a JSON array.
      ALTER TABLE webhooks ADD COLUMN max_events_per_request INTEGER NOT NULL DEFAULT 1;
    `,
  },
];

/**
 * Applies pending migrations, each in its own IMMEDIATE transaction (which holds SQLite's
 * write lock, so two processes opening the same file cannot both apply one). Each version is
 * looked up on its own, as on PostgreSQL, not compared with the newest applied: a database that
 * has a later version can still lack an earlier one added beside it.
 */
export function migrateSqlite(db: DatabaseSync, now: number, logger: Logger): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT');
  const latest = Math.max(...SQLITE_MIGRATIONS.map((m) => m.version));
  for (const migration of SQLITE_MIGRATIONS) {
    db.exec('BEGIN IMMEDIATE');
    try {
      const row = db.prepare('SELECT max(version) AS version FROM schema_migrations').get() as { version: number | null };
      const newest = row.version ?? 0;
      if (newest > latest) {
        throw new Error(
          `SQLite database schema is at version ${newest}, newer than this Rookery supports (${latest}); upgrade Rookery`,
        );
      }
      if (db.prepare('SELECT 1 FROM schema_migrations WHERE version = ?').get(migration.version)) {
        db.exec('COMMIT');
        continue;
      }
      db.exec(migration.sql);
      db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(migration.version, now);
      db.exec('COMMIT');
      logger.info({ event: 'storage.migrated', version: migration.version, name: migration.name }, 'applied migration');
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK');
      throw err;
    }
  }
}
