import type pg from 'pg';
import type { Logger } from '../../observability/logger.ts';
import { withTransaction } from './transaction.ts';
import { quoteIdent } from './identifiers.ts';

interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * Schema history of the PostgreSQL backend. Append only: a released migration is never edited.
 * Times are bigint milliseconds since the epoch. Names are unqualified: they resolve through the
 * connection's search_path, which is the store's schema.
 */
export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'queue tables',
    sql: `
      CREATE TABLE messages (
        id                text PRIMARY KEY,
        sender            text NOT NULL,
        message_id_header text,
        size              integer NOT NULL,
        body              bytea NOT NULL,
        submitter         text,
        source            text NOT NULL CHECK (source IN ('smtp', 'http', 'dsn')),
        client_address    text,
        created_at        bigint NOT NULL
      );
      -- purgeFinished: only messages created before the cut-off can have finished before it.
      CREATE INDEX messages_created_at ON messages (created_at);

      CREATE TABLE recipients (
        id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        message_id        text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        recipient         text NOT NULL,
        domain            text NOT NULL,
        state             text NOT NULL CHECK (state IN ('queued', 'delivering', 'delivered', 'bounced')),
        attempts          integer NOT NULL DEFAULT 0,
        next_attempt_at   bigint,
        locked_by         text,
        locked_until      bigint,
        last_disposition  text,
        last_code         integer,
        last_enhanced     text,
        last_response     text,
        last_stage        text,
        last_bounce_class text,
        last_remote_host  text,
        last_egress_ip    text,
        created_at        bigint NOT NULL,
        updated_at        bigint NOT NULL,
        CHECK (state <> 'queued' OR next_attempt_at IS NOT NULL),
        CHECK (state <> 'delivering' OR (locked_by IS NOT NULL AND locked_until IS NOT NULL))
      );
      -- claimDue reads it in (next_attempt_at, id) order for state 'queued' and scans the few
      -- 'delivering' rows for expired leases; also nextDueAt, countByState, releaseAll.
      CREATE INDEX recipients_due ON recipients (state, next_attempt_at, id);
      CREATE INDEX recipients_message ON recipients (message_id);

      CREATE TABLE events (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        recipient_id bigint NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
        message_id   text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        attempt      integer NOT NULL,
        at           bigint NOT NULL,
        disposition  text NOT NULL,
        code         integer,
        enhanced     text,
        response     text NOT NULL,
        stage        text NOT NULL,
        bounce_class text NOT NULL,
        remote_host  text,
        egress_ip    text
      );
      CREATE INDEX events_message ON events (message_id, at, id);
      -- Cascading deletes from recipients look events up by recipient.
      CREATE INDEX events_recipient ON events (recipient_id);
    `,
  },
  {
    version: 2,
    name: 'egress IP pool counters and state',
    sql: `
      -- Warm-up usage per (key, fixed window), shared by every daemon on this database;
      -- reserveUsage is one upsert on the primary key, so the row lock serialises reservations.
      CREATE TABLE usage_counters (
        key          text NOT NULL,
        window_start bigint NOT NULL,
        count        bigint NOT NULL CHECK (count >= 0),
        expires_at   bigint NOT NULL,
        PRIMARY KEY (key, window_start)
      );
      CREATE INDEX usage_counters_expires_at ON usage_counters (expires_at);

      -- Suspensions, plan restarts: few rows, read by key or key prefix.
      CREATE TABLE pool_state (
        key        text PRIMARY KEY,
        value      text NOT NULL,
        expires_at bigint
      );
      CREATE INDEX pool_state_expires_at ON pool_state (expires_at);
    `,
  },
  {
    version: 3,
    name: 'egress pool of each message',
    sql: `
      -- Chosen at acceptance (X-Rookery-Pool, the user's pool, the sender domain); older rows use "default".
      ALTER TABLE messages ADD COLUMN pool text NOT NULL DEFAULT 'default';
    `,
  },
  {
    version: 4,
    name: 'lease tokens and the write probe',
    sql: `
      -- The token of the row's latest claim: results and releases apply only under it. Kept after
      -- a result is recorded, so recording the same result again is recognised; cleared on release.
      ALTER TABLE recipients ADD COLUMN lease_token text;

      -- One row, rewritten by each readiness probe: a write that commits proves the database
      -- accepts writes (not read-only, not out of disk).
      CREATE TABLE write_probe (
        id integer PRIMARY KEY CHECK (id = 1),
        at bigint NOT NULL
      );
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
      -- JSON of {before, after} where a route gives it, as text: jsonb refuses an escaped NUL.
      CREATE TABLE audit (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at             bigint NOT NULL,
        actor          text,
        tenant         text,
        client_address text NOT NULL,
        method         text NOT NULL,
        route          text NOT NULL,
        target         text,
        change         text,
        status         integer NOT NULL,
        outcome        text NOT NULL
      );
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
      ALTER TABLE messages ADD COLUMN tenant text;
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
        kind       text NOT NULL,
        value      text NOT NULL,
        reason     text NOT NULL,
        paused_by  text NOT NULL,
        created_at bigint NOT NULL,
        -- NULL: until resumed.
        ends_at    bigint,
        PRIMARY KEY (kind, value)
      );
    `,
  },
  {
    version: 10,
    name: 'messages sent over HTTP: schedule, tags, metadata, idempotency keys',
    sql: `
      -- A scheduled send's time (the first attempt's, and where delivery.maxAge starts); NULL: at once.
      ALTER TABLE messages ADD COLUMN send_at bigint;
      -- NULL: none given. metadata is the JSON of an object of strings, as text (jsonb refuses an escaped NUL).
      ALTER TABLE messages ADD COLUMN tags text[];
      ALTER TABLE messages ADD COLUMN metadata text;

      -- Idempotency-Key of POST /v1/messages and /batch: the first answer, stored in the same
      -- transaction as the messages it reports. The primary key decides between two requests,
      -- also from two daemons: the second insert waits for the first transaction's outcome.
      CREATE TABLE idempotency_keys (
        scope        text NOT NULL,
        key          text NOT NULL,
        request_hash text NOT NULL,
        status       integer NOT NULL,
        response     text NOT NULL,
        created_at   bigint NOT NULL,
        PRIMARY KEY (scope, key)
      );
      -- The retention purge by age.
      CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
    `,
  },
  {
    version: 11,
    name: 'suppression list',
    sql: `
      -- Secrets made once per database, read at open by every node: the salt that keys suppressed
      -- addresses (two random UUIDs: gen_random_uuid draws from the server's strong random source).
      CREATE TABLE store_secrets (
        name  text PRIMARY KEY,
        value text NOT NULL
      );
      INSERT INTO store_secrets (name, value)
      VALUES ('suppression-address-salt', replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));

      -- One entry per tenant ('' for mail of no tenant) and address, keyed by HMAC-SHA256 of the
      -- lower-cased address: address may be nulled (erasure) and the opt-out stays. tenant sorts
      -- in byte order (COLLATE "C"), as SQLite's does, so both backends page alike. reason has no
      -- CHECK (a later reason is one more value); the store checks it. source is the JSON of the
      -- event that caused the entry, as text (jsonb refuses an escaped NUL).
      CREATE TABLE suppressions (
        tenant       text COLLATE "C" NOT NULL,
        address_hash bytea NOT NULL,
        address      text,
        reason       text NOT NULL,
        source       text,
        created_at   bigint NOT NULL,
        -- NULL: never expires.
        expires_at   bigint,
        PRIMARY KEY (tenant, address_hash)
      );
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
      -- Tenants' endpoints. tenant '' is mail of no tenant; event_types is a JSON array (text, as
      -- on SQLite); secret is the signing key (whsec_...), needed in clear to sign.
      CREATE TABLE webhooks (
        id              text PRIMARY KEY,
        tenant          text NOT NULL,
        url             text NOT NULL,
        event_types     text NOT NULL,
        description     text,
        secret          text NOT NULL,
        enabled         boolean NOT NULL,
        disabled_reason text,
        disabled_at     bigint,
        -- The first failure since the last success: the endpoint is disabled after failing for 3 days.
        failing_since   bigint,
        created_at      bigint NOT NULL,
        updated_at      bigint NOT NULL
      );
      CREATE INDEX webhooks_tenant ON webhooks (tenant, id);

      -- One row per (tenant, event type) an enabled endpoint listens to: the writes that emit
      -- events join it, so an event nobody listens to costs one index probe and writes nothing.
      CREATE TABLE webhook_subscriptions (
        tenant     text NOT NULL,
        event_type text NOT NULL,
        webhook_id text NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
        PRIMARY KEY (tenant, event_type, webhook_id)
      );
      CREATE INDEX webhook_subscriptions_webhook ON webhook_subscriptions (webhook_id);

      -- The outbox: one row per event and subscribed endpoint, written in the transaction of the
      -- change that caused it. The event's data is copied in (tags and metadata from the message,
      -- which retention may purge first). No foreign key to messages for the same reason.
      CREATE TABLE webhook_deliveries (
        id              text PRIMARY KEY,
        webhook_id      text NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
        event_type      text NOT NULL,
        tenant          text NOT NULL,
        message_id      text,
        recipient       text,
        occurred_at     bigint NOT NULL,
        egress_ip       text,
        reply_code      integer,
        reply_enhanced  text,
        reply_text      text,
        remote_host     text,
        bounce_class    text,
        attempt         integer,
        tags            text[],
        metadata        text,
        data            text,
        state           text NOT NULL CHECK (state IN ('pending', 'delivering', 'delivered', 'failed', 'held')),
        attempts        integer NOT NULL DEFAULT 0,
        next_attempt_at bigint NOT NULL,
        retry_until     bigint NOT NULL,
        locked_by       text,
        locked_until    bigint,
        lease_token     text,
        last_attempt_at bigint,
        last_status     integer,
        last_error      text,
        finished_at     bigint,
        created_at      bigint NOT NULL,
        CHECK (state <> 'delivering' OR (locked_by IS NOT NULL AND locked_until IS NOT NULL))
      );
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
      -- What came back about a recipient after delivery (src/feedback/). details is JSON, as text
      -- (jsonb refuses an escaped NUL). fingerprint identifies the report: one delivered twice (the remote retried after a 451)
      -- is recorded once. kind has no CHECK, as queue_pauses: a later kind is one more value.
      CREATE TABLE feedback_events (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        message_id   text NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        recipient_id bigint NOT NULL REFERENCES recipients (id) ON DELETE CASCADE,
        recipient    text NOT NULL,
        kind         text NOT NULL,
        at           bigint NOT NULL,
        action       text,
        code         integer,
        enhanced     text,
        diagnostic   text,
        bounce_class text,
        reporter     text,
        details      text NOT NULL,
        egress_ip    text,
        fingerprint  text NOT NULL UNIQUE
      );
      -- GET /v1/messages/{id}: a message's events oldest first.
      CREATE INDEX feedback_events_message ON feedback_events (message_id, at, id);
      -- Cascading deletes from recipients look events up by recipient.
      CREATE INDEX feedback_events_recipient ON feedback_events (recipient_id);
      -- A complaint names its original by the Message-ID header of the copy it attaches. By its
      -- md5: a client may send a Message-ID longer than a btree entry may be.
      CREATE INDEX messages_message_id_header ON messages (md5(message_id_header)) WHERE message_id_header IS NOT NULL;
    `,
  },
  {
    version: 14,
    name: 'message bodies still kept',
    sql: `
      -- dropFinishedBodies (storage.bodyRetention): the messages whose body is still there, oldest
      -- first, so each sweep reads only those, not every message the retention period keeps.
      CREATE INDEX messages_body_kept ON messages (created_at) WHERE octet_length(body) > 0;
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
        message_id text PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
        erased_at  bigint NOT NULL
      );
    `,
  },
  {
    version: 16,
    name: 'outbound TLS: MTA-STS policies, TLS-RPT session counts and reports',
    sql: `
      -- MTA-STS policies as fetched (RFC 8461), shared so every node applies the same one and
      -- one fetch serves all. mx and lines are JSON arrays of text.
      CREATE TABLE mta_sts_policies (
        domain     text PRIMARY KEY,
        policy_id  text NOT NULL,
        mode       text NOT NULL,
        mx         text NOT NULL,
        max_age    bigint NOT NULL,
        lines      text NOT NULL,
        fetched_at bigint NOT NULL,
        expires_at bigint NOT NULL
      );
      -- TLS-RPT (RFC 8460) session counts per UTC day and policy domain; failures keep where
      -- (empty strings for successes, which are only counted).
      CREATE TABLE tls_session_counts (
        day           text NOT NULL,
        policy_domain text NOT NULL,
        policy_type   text NOT NULL,
        policy_id     text NOT NULL,
        result        text NOT NULL,
        sending_ip    text NOT NULL,
        receiving_ip  text NOT NULL,
        receiving_mx  text NOT NULL,
        policy_lines  text NOT NULL,
        policy_mx     text NOT NULL,
        sessions      bigint NOT NULL,
        PRIMARY KEY (day, policy_domain, policy_type, policy_id, result, sending_ip, receiving_ip, receiving_mx)
      );
      -- One report per domain and day: claimed by a node (until claimed_until), then sent or skipped.
      CREATE TABLE tls_reports (
        day           text NOT NULL,
        policy_domain text NOT NULL,
        state         text NOT NULL CHECK (state IN ('claimed', 'sent', 'skipped')),
        claimed_by    text NOT NULL,
        claimed_until bigint NOT NULL,
        finished_at   bigint,
        PRIMARY KEY (day, policy_domain)
      );
      -- The events' TLS: the session's version, cipher, verification and policy (JSON), null without one.
      ALTER TABLE events ADD COLUMN tls text;
    `,
  },
  {
    version: 17,
    name: 'blocklist states',
    sql: `
      -- What the blocklist watch last found for each (egress IP, list name), shared by every
      -- node: codes is a JSON array of the A answers; times in ms. One row per pair.
      CREATE TABLE blocklist_states (
        ip              text NOT NULL,
        list            text NOT NULL,
        listed          boolean NOT NULL,
        codes           text NOT NULL,
        reason          text,
        first_listed_at bigint,
        last_checked_at bigint,
        last_error      text,
        PRIMARY KEY (ip, list)
      );
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
      ALTER TABLE webhooks ADD COLUMN enabled_at bigint;
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
      ALTER TABLE recipients ADD COLUMN parked_due_at bigint;
      -- A retry of a paused scope: the parked rows that wait past their own time.
      CREATE INDEX recipients_parked ON recipients (parked_due_at) WHERE parked_due_at IS NOT NULL;
    `,
  },
  {
    version: 21,
    name: 'webhook endpoints taking several events per request',
    sql: `
      -- At most this many events in one POST: 1 posts each event alone; more posts a JSON array.
      ALTER TABLE webhooks ADD COLUMN max_events_per_request integer NOT NULL DEFAULT 1;
    `,
  },
];

/** First key of the two-key advisory lock taken while migrating ("rook"). */
const MIGRATION_LOCK_KEY = 0x726f6f6b;

/**
 * Applies pending migrations in one transaction under a transaction-scoped advisory lock
 * (per schema), so daemons starting at the same time apply each migration exactly once: the
 * second waits for the first, then finds nothing left to do.
 */
export async function migratePostgres(pool: pg.Pool, schema: string, now: number, logger: Logger): Promise<void> {
  await withTransaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [MIGRATION_LOCK_KEY, schema]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
    // The search_path given at connect time named a schema that may only exist from now on.
    await client.query(`SET LOCAL search_path TO ${quoteIdent(schema)}`);
    await client.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at bigint NOT NULL)',
    );
    const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations');
    const applied = new Set(rows.map((r) => r.version));
    const latest = Math.max(...POSTGRES_MIGRATIONS.map((m) => m.version));
    const newest = Math.max(0, ...applied);
    if (newest > latest) {
      throw new Error(
        `PostgreSQL schema ${schema} is at version ${newest}, newer than this Rookery supports (${latest}); upgrade Rookery`,
      );
    }
    for (const migration of POSTGRES_MIGRATIONS) {
      if (applied.has(migration.version)) continue;
      await client.query(migration.sql);
      await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [migration.version, now]);
      logger.info({ event: 'storage.migrated', schema, version: migration.version, name: migration.name }, 'applied migration');
    }
  });
}
