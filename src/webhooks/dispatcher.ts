import type { Clock } from '../clock.ts';
import type { Logger } from '../observability/logger.ts';
import type { Store } from '../storage/store.ts';
import { WEBHOOK_RETRY_WINDOW_MS, type ClaimedWebhookDelivery, type WebhookAttemptResult } from '../storage/webhook-outbox.ts';
import type { PostOutcome } from '../engine/http-poster.ts';
import { nextWebhookAttempt } from './retry-schedule.ts';
import { webhookBatchId, webhookBatchItem, webhookBody } from './payload.ts';
import type { WebhookRequest, WebhookSender } from './webhook-sender.ts';
import type { WebhookAttemptMetrics } from './webhook-metrics.ts';

export interface WebhookDispatcherOptions {
  store: Pick<Store, 'claimWebhookDeliveries' | 'renewWebhookLeases' | 'recordWebhookAttempts' | 'releaseWebhookDeliveries' | 'releaseAllWebhookDeliveries'>;
  /** Signs and POSTs a request (webhook-sender.ts), which the dispatcher renders. */
  sender: WebhookSender;
  /** Due times, retries, the retry window. The signatures' time is the sender's (the system's). */
  clock: Clock;
  logger: Logger;
  metrics: WebhookAttemptMetrics;
  /** Identifies this node's claims (given back at its next start after a crash). */
  owner: string;
  /** POSTs in flight at once per endpoint. */
  concurrency: number;
  /** One POST's limit: the leases are three times it, renewed every third. */
  timeoutMs: number;
  /** How often the outbox is looked at when nothing woke the dispatcher. Default 250 ms. */
  pollMs?: number;
  /** Deliveries held at once, in flight or waiting for a slot of their endpoint. Default 1000. */
  maxHeld?: number;
  /** Jitter of the retry times, in [0, 1). */
  random?: () => number;
}

/** Rows claimed per call at most. */
const CLAIM_BATCH = 200;
/**
 * Rows of one endpoint per claim, and what it may hold before it is left out of claims: a busy
 * endpoint is claimed for in large batches (each claim and its transaction cost more than the
 * rows it hands out), yet one endpoint's backlog takes at most half a claim.
 */
const PER_ENDPOINT = CLAIM_BATCH / 2;
/**
 * Results are recorded in batches of up to this many, or after RESULT_DELAY_MS: each write
 * transaction costs far more than the rows it updates, and a result recorded a little later only
 * keeps its row claimed a little longer (its POST is done).
 */
const RESULT_BATCH = 200;
const RESULT_DELAY_MS = 20;

interface Endpoint {
  waiting: ClaimedWebhookDelivery[];
  /** POSTs in flight. */
  inFlight: number;
  /** Deliveries in those POSTs. */
  inFlightRows: number;
  /** Events it takes per request, as last claimed. */
  batch: number;
}

/**
 * A batch's body stays within this many bytes (a larger event goes alone): inside the body limits
 * receivers commonly set, and one oversized event never takes a hundred others into its retries.
 */
const MAX_BATCH_BYTES = 256 * 1024;

/**
 * Sends the outbox: claims due deliveries in batches (several nodes share the outbox without
 * sending a row twice while their leases run), POSTs each, signed, with at most `concurrency` in
 * flight per endpoint, and records the results in batches. An endpoint taking several events per
 * request gets as many of its waiting deliveries in one POST as it takes: under load they come in
 * full batches, two requests in flight, and alone a delivery is not held back to wait for others.
 * A claim takes a limited share of its rows of one endpoint, and an endpoint holding about that
 * many is left out of the next claim, so a receiver that is slow or down never takes the others'
 * turn. Claimed rows not yet sent and those in flight are renewed every third of the lease. A
 * failure is retried with exponential backoff (retry-schedule.ts) until its retry window ends; the
 * store disables an endpoint whose every delivery failed for that window, and that is logged here.
 *
 * Stopping never loses a claimed delivery: rows not yet sent are given back, and the POSTs in
 * flight (each within the timeout) end with their results recorded.
 */
export class WebhookDispatcher {
  private running = false;
  private pumping: Promise<void> | null = null;
  private wakeAgain = false;
  private timer: NodeJS.Timeout | null = null;
  private renewTimer: NodeJS.Timeout | null = null;
  private renewing: Promise<void> | null = null;
  private readonly endpoints = new Map<string, Endpoint>();
  /** Every row this node holds a claim of, by delivery id: waiting or in flight. */
  private readonly held = new Map<string, ClaimedWebhookDelivery>();
  private readonly posts = new Set<Promise<void>>();
  private results: WebhookAttemptResult[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  private recording: Promise<void> = Promise.resolve();
  private readonly options: WebhookDispatcherOptions;
  private readonly log: Logger;
  private readonly leaseMs: number;
  private readonly maxHeld: number;

  // A field, not a parameter property: the dispatcher thread loads this file with type stripping.
  constructor(options: WebhookDispatcherOptions) {
    this.options = options;
    this.log = options.logger.child({ component: 'webhooks' });
    this.leaseMs = Math.max(30_000, options.timeoutMs * 3);
    this.maxHeld = options.maxHeld ?? 1000;
  }

  async start(): Promise<void> {
    if (this.running) return;
    const released = await this.options.store.releaseAllWebhookDeliveries(this.options.owner);
    if (released) this.log.info({ event: 'webhooks.recovered', deliveries: released }, 'returned unfinished webhook deliveries to the outbox');
    this.running = true;
    this.renewTimer = setInterval(() => void this.renew(), Math.floor(this.leaseMs / 3));
    this.renewTimer.unref();
    this.wake();
  }

  /** Asks for an outbox check now (a replay, an endpoint enabled); calls coalesce. */
  wake(): void {
    if (!this.running) return;
    if (this.pumping) {
      this.wakeAgain = true;
      return;
    }
    this.clearTimer();
    this.pumping = this.pump();
  }

  /** Deliveries this node holds now: in flight, or waiting for a slot. */
  get inProgress(): number {
    return this.held.size;
  }

  async stop(): Promise<void> {
    if (!this.running && this.held.size === 0) return;
    this.running = false;
    this.clearTimer();
    await this.pumping;
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.renewTimer = null;
    await this.renewing;
    const waiting = [...this.endpoints.values()].flatMap((e) => e.waiting.splice(0));
    for (const row of waiting) this.held.delete(row.id);
    if (waiting.length > 0) {
      await this.options.store.releaseWebhookDeliveries(waiting).catch((err: unknown) => {
        this.log.error({ event: 'webhooks.release.failed', deliveries: waiting.length, err }, 'could not give back the webhook deliveries not sent; they are claimable when their leases run out');
      });
    }
    while (this.posts.size > 0) await Promise.allSettled([...this.posts]);
    this.flushResults();
    await this.recording;
  }

  private async pump(): Promise<void> {
    const { store, clock, owner } = this.options;
    try {
      do {
        this.wakeAgain = false;
        while (this.running && this.held.size < this.maxHeld) {
          const limit = Math.min(CLAIM_BATCH, this.maxHeld - this.held.size);
          const rows = await store.claimWebhookDeliveries({ now: clock.now(), limit, perWebhook: this.perEndpointClaim(), skip: this.busyEndpoints(), owner, leaseMs: this.leaseMs });
          if (!this.running) {
            await store.releaseWebhookDeliveries(rows);
            break;
          }
          const fillMore = this.take(rows);
          if (rows.length < limit && !fillMore) break;
        }
      } while (this.wakeAgain && this.running);
    } catch (err) {
      this.log.error({ event: 'webhooks.claim.failed', err }, 'could not claim webhook deliveries; trying again shortly');
    } finally {
      this.pumping = null;
      this.arm();
    }
  }

  /** Endpoints holding what they may: the next claim leaves them out. */
  private busyEndpoints(): string[] {
    return [...this.endpoints].filter(([, e]) => this.heldOf(e) >= this.fullMark(e)).map(([id]) => id);
  }

  /** Deliveries held for an endpoint: waiting, and in its POSTs in flight. */
  private heldOf(endpoint: Endpoint): number {
    return endpoint.waiting.length + endpoint.inFlightRows;
  }

  /**
   * Held down to this many, an endpoint is claimed for again before it runs dry: two rounds of
   * single POSTs, or one batch.
   */
  private refillMark(endpoint: Endpoint): number {
    return Math.max(this.options.concurrency * 2, endpoint.batch);
  }

  /**
   * What an endpoint may hold: a claim's share, two rounds of single POSTs, or two batches (one in
   * flight while the next is claimed), so a receiver that hangs keeps little of what others need.
   */
  private fullMark(endpoint: Endpoint): number {
    return Math.max(PER_ENDPOINT, this.options.concurrency * 2, endpoint.batch * 2);
  }

  private arm(): void {
    if (!this.running) return;
    this.clearTimer();
    this.timer = setTimeout(() => this.wake(), this.options.pollMs ?? 250);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /**
   * Takes a claim's rows and starts what the endpoints' free slots allow (after the whole claim,
   * so a batch can take several of its rows). True when an endpoint got a whole claim's share and
   * may hold more (the next batch): claim again at once.
   */
  private take(rows: readonly ClaimedWebhookDelivery[]): boolean {
    const touched = new Map<string, number>();
    for (const row of rows) {
      // Claimed again while this node still holds it (its lease ran out here): the new claim's
      // token replaces the old one on the row, so the old claim's send would not apply.
      const had = this.held.get(row.id);
      if (had) {
        had.token = row.token;
        continue;
      }
      this.held.set(row.id, row);
      let endpoint = this.endpoints.get(row.webhookId);
      if (!endpoint) this.endpoints.set(row.webhookId, (endpoint = { waiting: [], inFlight: 0, inFlightRows: 0, batch: 1 }));
      endpoint.batch = row.maxEventsPerRequest;
      endpoint.waiting.push(row);
      touched.set(row.webhookId, (touched.get(row.webhookId) ?? 0) + 1);
    }
    let fillMore = false;
    for (const [webhookId, count] of touched) {
      const endpoint = this.endpoints.get(webhookId)!;
      this.startNext(webhookId, endpoint);
      if (count >= this.perEndpointClaim() && this.heldOf(endpoint) < this.fullMark(endpoint)) fillMore = true;
    }
    return fillMore;
  }

  /** Rows of one endpoint a claim takes at most. */
  private perEndpointClaim(): number {
    return Math.max(PER_ENDPOINT, this.options.concurrency);
  }

  private startNext(webhookId: string, endpoint: Endpoint): void {
    while (this.running && endpoint.inFlight < this.options.concurrency && endpoint.waiting.length > 0) {
      const { rows, request } = nextRequest(endpoint.waiting);
      endpoint.inFlight += 1;
      endpoint.inFlightRows += rows.length;
      const post: Promise<void> = this.send(rows, request).finally(() => {
        this.posts.delete(post);
        for (const row of rows) this.held.delete(row.id);
        endpoint.inFlight -= 1;
        endpoint.inFlightRows -= rows.length;
        this.startNext(webhookId, endpoint);
        const held = this.heldOf(endpoint);
        if (held === 0) this.endpoints.delete(webhookId);
        // Down to the refill mark: claim more of it (and of the others) before it runs dry.
        const mark = this.refillMark(endpoint);
        if (held <= mark && held + rows.length > mark) this.wake();
      });
      this.posts.add(post);
    }
  }

  /** One POST of `rows` (one delivery, or a batch of one endpoint's), its results queued for recording. */
  private async send(rows: readonly ClaimedWebhookDelivery[], request: WebhookRequest): Promise<void> {
    const { clock, sender, metrics } = this.options;
    let outcome: PostOutcome;
    try {
      outcome = await sender.send(request);
    } catch (err) {
      outcome = { status: null, error: (err as Error).message, ms: 0 };
    }
    const at = clock.now();
    const ok = outcome.status !== null && outcome.status >= 200 && outcome.status < 300;
    // One jitter for the POST: a failed batch comes due again together (and, unless other rows
    // wait before it, goes as it went).
    const jitter = (this.options.random ?? Math.random)();
    const post = { seconds: outcome.ms / 1000, delivered: 0, retry: 0, failed: 0 };
    const givenUp: string[] = [];
    for (const row of rows) {
      const nextAttemptAt = ok ? null : nextWebhookAttempt(row.attempts + 1, at, row.retryUntil, () => jitter);
      if (!ok && nextAttemptAt === null) givenUp.push(row.id);
      post[ok ? 'delivered' : nextAttemptAt === null ? 'failed' : 'retry'] += 1;
      this.results.push({ id: row.id, token: row.token, webhookId: row.webhookId, ok, status: outcome.status, error: ok ? null : outcome.error, at, nextAttemptAt });
    }
    metrics.posted(post);
    if (!ok) {
      // One line per POST: a failing batch is one failure of the endpoint.
      const first = rows[0]!;
      const fields = { webhook: first.webhookId, request: request.id, deliveries: rows.length, type: first.event.type, attempt: first.attempts + 1, status: outcome.status, error: outcome.error };
      if (givenUp.length < rows.length) this.log.debug({ event: 'webhooks.delivery.retry', ...fields }, 'webhook delivery failed; retrying later');
      if (givenUp.length > 0) this.log.warn({ event: 'webhooks.delivery.failed', ...fields, givenUp }, 'webhook deliveries given up after their retry window');
    }
    if (this.results.length >= RESULT_BATCH) this.flushResults();
    else this.flushTimer ??= setTimeout(() => this.flushResults(), RESULT_DELAY_MS);
  }

  /** Records the results gathered so far, one call after another (so a stop can wait for all). */
  private flushResults(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const batch = this.results.splice(0);
    if (batch.length === 0) return;
    this.recording = this.recording.then(() => this.record(batch));
  }

  private async record(batch: WebhookAttemptResult[]): Promise<void> {
    try {
      const { recorded, disabled } = await this.options.store.recordWebhookAttempts(batch, WEBHOOK_RETRY_WINDOW_MS);
      if (recorded.length < batch.length) {
        this.log.debug({ event: 'webhooks.results.stale', deliveries: batch.length - recorded.length }, 'results of deliveries another claim took over were not recorded');
      }
      for (const d of disabled) {
        this.log.error(
          { event: 'webhooks.endpoint.disabled', webhook: d.id, tenant: d.tenant, url: d.url, failingSince: new Date(d.failingSince).toISOString() },
          'webhook endpoint disabled: every delivery failed for 3 days; its pending deliveries are held until it is enabled again (PATCH enabled: true)',
        );
      }
    } catch (err) {
      // The rows keep this node's claim until their leases run out; then they are sent again.
      this.log.error({ event: 'webhooks.record.failed', deliveries: batch.length, err }, 'could not record webhook results; those deliveries will be sent again');
    }
  }

  /** Extends the leases of every row held here; forgets rows another claim took over that were not sent yet. */
  private async renew(): Promise<void> {
    if (this.renewing || this.held.size === 0) return;
    const leases = [...this.held.values()];
    this.renewing = (async () => {
      try {
        const lost = new Set(await this.options.store.renewWebhookLeases(leases, this.options.clock.now() + this.leaseMs));
        if (lost.size === 0) return;
        this.log.warn({ event: 'webhooks.lease.lost', deliveries: lost.size }, 'webhook deliveries were claimed by another node; not sending them here');
        for (const endpoint of this.endpoints.values()) {
          const kept = endpoint.waiting.filter((row) => !lost.has(row.id));
          for (const row of endpoint.waiting) if (lost.has(row.id)) this.held.delete(row.id);
          endpoint.waiting = kept;
        }
      } catch (err) {
        this.log.warn({ event: 'webhooks.lease.renew.failed', err }, 'could not renew webhook leases');
      } finally {
        this.renewing = null;
      }
    })();
    await this.renewing;
  }
}

/**
 * The next POST of an endpoint's waiting rows, taken off them: the first alone, or for an
 * endpoint taking several events per request a JSON array of it and as many after it as it takes
 * (within MAX_BATCH_BYTES) that were claimed with the same URL and secret (a change of either
 * between claims starts a new request).
 */
function nextRequest(waiting: ClaimedWebhookDelivery[]): { rows: ClaimedWebhookDelivery[]; request: WebhookRequest } {
  const first = waiting[0]!;
  const target = { url: first.url, secret: first.secret };
  if (first.maxEventsPerRequest <= 1) return { rows: waiting.splice(0, 1), request: { ...target, id: first.id, body: webhookBody(first.event) } };
  const items = [webhookBatchItem(first.id, first.event)];
  let bytes = Buffer.byteLength(items[0]!) + 2;
  while (items.length < first.maxEventsPerRequest && items.length < waiting.length) {
    const row = waiting[items.length]!;
    if (row.url !== first.url || row.secret !== first.secret || row.maxEventsPerRequest !== first.maxEventsPerRequest) break;
    const item = webhookBatchItem(row.id, row.event);
    bytes += Buffer.byteLength(item) + 1;
    if (bytes > MAX_BATCH_BYTES) break;
    items.push(item);
  }
  const rows = waiting.splice(0, items.length);
  return { rows, request: { ...target, id: webhookBatchId(rows.map((r) => r.id)), body: `[${items.join(',')}]` } };
}
