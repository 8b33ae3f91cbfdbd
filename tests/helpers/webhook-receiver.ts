import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Webhook } from 'standardwebhooks';

/** One POST a receiver got: its headers, body, and whether the reference library verified it. */
export interface ReceivedWebhook {
  id: string;
  timestamp: string;
  signature: string;
  body: string;
  /** The body as Webhook.verify parsed it; null when it did not verify. */
  payload: { type: string; timestamp: string; data: Record<string, any> } | null;
  /** Why verification failed; null when it passed. */
  verifyError: string | null;
  path: string;
}

export interface WebhookReceiver {
  /** An URL of this receiver on 127.0.0.1 (`path` kept, so one receiver can stand for several endpoints). */
  url(path?: string): string;
  readonly port: number;
  readonly received: ReceivedWebhook[];
  /** The secret every delivery is verified with from now on (per path, '' for all). */
  verifyWith(secret: string, path?: string): void;
  /** How it answers the n-th POST (from 1): a status, after an optional wait. Default 204. */
  answer(reply: (request: ReceivedWebhook, n: number) => number | Promise<number>): void;
  /** Waits until `count` POSTs came (a ceiling, never a timing assertion). */
  waitFor(count: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * A real HTTP receiver on loopback for webhook tests: it verifies every POST with the Standard
 * Webhooks reference library (standardwebhooks' Webhook.verify), as a tenant's receiver would,
 * and records it whether it verifies or not; the test decides what it answers.
 */
export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const received: ReceivedWebhook[] = [];
  const secrets = new Map<string, string>();
  let reply: (request: ReceivedWebhook, n: number) => number | Promise<number> = () => 204;
  const waiters: Array<() => void> = [];
  const sockets = new Set<Socket>();

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const header = (name: string) => String(req.headers[name] ?? '');
      const path = req.url ?? '/';
      const secret = secrets.get(path) ?? secrets.get('');
      let payload: ReceivedWebhook['payload'] = null;
      let verifyError: string | null = 'no secret to verify with';
      if (secret) {
        try {
          payload = new Webhook(secret).verify(body, { 'webhook-id': header('webhook-id'), 'webhook-timestamp': header('webhook-timestamp'), 'webhook-signature': header('webhook-signature') }) as ReceivedWebhook['payload'];
          verifyError = null;
        } catch (err) {
          verifyError = (err as Error).message;
        }
      }
      const request: ReceivedWebhook = { id: header('webhook-id'), timestamp: header('webhook-timestamp'), signature: header('webhook-signature'), body, payload, verifyError, path };
      received.push(request);
      for (const wake of waiters.splice(0)) wake();
      void Promise.resolve(reply(request, received.length)).then((status) => {
        res.writeHead(status, { 'content-type': 'text/plain' }).end(status >= 300 ? `status ${status}` : '');
      });
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    port,
    received,
    url: (path = '/hook') => `http://127.0.0.1:${port}${path}`,
    verifyWith: (secret, path = '') => void secrets.set(path, secret),
    answer: (next) => void (reply = next),
    async waitFor(count, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (received.length < count) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${count} webhook POSTs (got ${received.length})`);
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          timer = setTimeout(resolve, left);
        });
        clearTimeout(timer);
      }
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
