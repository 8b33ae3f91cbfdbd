import pg from 'pg';
import type { Logger } from '../../observability/logger.ts';
import { WORK_CHANNEL } from './queries.ts';

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 30_000;

/**
 * LISTEN on a dedicated connection (a pooled one would be handed to other queries) and call
 * the subscribers when work is enqueued in this store's schema. Notifications are only hints:
 * when the connection drops, it reconnects with backoff and, having possibly missed some,
 * calls the subscribers once so they look for work.
 */
export class WorkListener {
  private readonly listeners = new Set<() => void>();
  private client: pg.Client | null = null;
  private started = false;
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private reconnectDelay = RECONNECT_MIN_MS;
  private connecting: Promise<void> | null = null;

  private readonly options: {
    clientConfig: pg.ClientConfig;
    /** Only notifications with this payload (the schema) are for this store. */
    payload: string;
    logger: Logger;
  };

  // A field, not a parameter property: the webhook dispatcher thread loads the store with type stripping.
  constructor(options: WorkListener['options']) {
    this.options = options;
  }

  subscribe(listener: () => void): () => void {
    if (this.closed) return () => {};
    this.listeners.add(listener);
    if (!this.started) {
      this.started = true;
      this.connecting = this.connect(false);
    }
    return () => {
      this.listeners.delete(listener);
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    await this.connecting;
    const client = this.client;
    this.client = null;
    if (client) await client.end().catch(() => {});
  }

  private async connect(isReconnect: boolean): Promise<void> {
    const client = new pg.Client(this.options.clientConfig);
    // Registered before connect: an error event without a listener would crash the process.
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, null));
    client.on('notification', (msg) => {
      if (msg.channel === WORK_CHANNEL && msg.payload === this.options.payload) this.emit();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${WORK_CHANNEL}`);
    } catch (err) {
      client.removeAllListeners('end');
      await client.end().catch(() => {});
      this.options.logger.warn({ event: 'storage.listen.failed', err, retryInMs: this.reconnectDelay }, 'LISTEN connection failed');
      this.scheduleReconnect();
      return;
    }
    if (this.closed) {
      await client.end().catch(() => {});
      return;
    }
    this.client = client;
    this.reconnectDelay = RECONNECT_MIN_MS;
    if (isReconnect) {
      this.options.logger.info({ event: 'storage.listen.restored' }, 'LISTEN connection restored');
      this.emit();
    }
  }

  private lost(client: pg.Client, err: Error | null): void {
    if (this.client !== client) return;
    this.client = null;
    client.removeAllListeners('end');
    void client.end().catch(() => {});
    if (this.closed) return;
    this.options.logger.warn({ event: 'storage.listen.lost', err, retryInMs: this.reconnectDelay }, 'LISTEN connection lost');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const delay = this.reconnectDelay;
    this.reconnectDelay = Math.min(this.reconnectDelay * 2, RECONNECT_MAX_MS);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connecting = this.connect(true);
    }, delay);
  }

  private emit(): void {
    for (const listener of this.listeners) {
      try {
        listener();
      } catch (err) {
        this.options.logger.error({ event: 'storage.listener.failed', err }, 'work listener threw');
      }
    }
  }
}
