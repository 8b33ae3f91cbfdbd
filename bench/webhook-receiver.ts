import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Webhook } from 'standardwebhooks';

/**
 * The webhook receiver of `npm run bench -- --webhooks`: a node:http server in the benchmark's
 * process answering 204 to every POST, counting events by type (one per POST, or each of a
 * batch's array) and recording when the first and last came. Every 50th POST is verified with
 * the reference library (verifying all would add the harness's CPU to the daemon's on a shared
 * machine); a failure is counted.
 */
export interface BenchWebhookReceiver {
  url: string;
  /** Events received. */
  received(): number;
  /** POSTs received. */
  requests(): number;
  byType: Map<string, number>;
  firstAt(): number;
  lastAt(): number;
  verified(): { checked: number; failed: number };
  verifyWith(secret: string): void;
  waitFor(n: number, timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

export async function startBenchWebhookReceiver(): Promise<BenchWebhookReceiver> {
  let count = 0;
  let requests = 0;
  let first = 0;
  let last = 0;
  let checked = 0;
  let failed = 0;
  let verifier: Webhook | null = null;
  const byType = new Map<string, number>();
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      requests += 1;
      last = Date.now();
      first ||= last;
      // An event's type is its first field (webhooks/payload.ts); a batch's events each lead with their id.
      for (const [, type] of body.matchAll(/"type":"([^"]+)","timestamp"/g)) {
        count += 1;
        byType.set(type!, (byType.get(type!) ?? 0) + 1);
      }
      if (verifier && requests % 50 === 0) {
        checked += 1;
        try {
          verifier.verify(body, { 'webhook-id': String(req.headers['webhook-id']), 'webhook-timestamp': String(req.headers['webhook-timestamp']), 'webhook-signature': String(req.headers['webhook-signature']) });
        } catch {
          failed += 1;
        }
      }
      res.writeHead(204).end();
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`,
    received: () => count,
    requests: () => requests,
    byType,
    firstAt: () => first,
    lastAt: () => last,
    verified: () => ({ checked, failed }),
    verifyWith: (secret) => void (verifier = new Webhook(secret)),
    async waitFor(n, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (count < n) {
        if (Date.now() > deadline) throw new Error(`webhook receiver: ${count} of ${n} events after ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
