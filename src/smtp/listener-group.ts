import type { AddressInfo } from 'node:net';
import type { ListenerConfig } from '../config/schema.ts';
import type { GatedSmtpServer } from '../vendor/smtp-server.ts';
import { closeListener, listen } from './submission-listener.ts';

/**
 * The smtp-server instances of one door (submission, inbound) and their life, shared by both:
 * started once; stopped once, after a start in progress settled; closed together.
 */
export class ListenerGroup {
  private readonly servers: GatedSmtpServer[] = [];
  private starting: Promise<void> | null = null;
  private stopped: Promise<void> | null = null;

  /** `closeAll`: the door's own closing (its close() of these listeners, its sessions, its logs). */
  constructor(private readonly closeAll: () => Promise<void>) {}

  /** Runs `listenAll` once (it opens each listener with open()); a failure closes the door and rejects. */
  start(listenAll: () => Promise<void>): Promise<void> {
    this.starting ??= listenAll().catch(async (err: unknown) => {
      await this.closeAll();
      throw err;
    });
    return this.starting;
  }

  /** Closes the door once, after a start in progress settled. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      if (this.starting) await this.starting.catch(() => undefined);
      await this.closeAll();
    })();
    return this.stopped;
  }

  /** Listens with `server` on `listener`'s address; resolves with the address bound. */
  async open(server: GatedSmtpServer, listener: ListenerConfig): Promise<AddressInfo> {
    this.servers.push(server);
    await listen(server, listener);
    return server.server.address() as AddressInfo;
  }

  /** Closes every listener still listening (closeListener: open sessions get the grace period). */
  async close(): Promise<void> {
    await Promise.all(this.servers.filter((s) => s.server.listening).map((s) => closeListener(s)));
  }

  get size(): number {
    return this.servers.length;
  }

  /** The bound address of each listener, in the order they were opened. */
  addresses(): { host: string; port: number }[] {
    return this.servers.map((server) => {
      const address = server.server.address() as AddressInfo | null;
      return { host: address?.address ?? '', port: address?.port ?? 0 };
    });
  }

  /** New TLS material for the handshakes that start from now on. */
  updateSecureContext(material: { key: Buffer | string; cert: Buffer | string }): void {
    for (const server of this.servers) server.updateSecureContext(material);
  }
}
