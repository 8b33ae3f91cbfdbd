import http from 'node:http';
import type { LoadResult } from './smtp-load.ts';

/**
 * The HTTP load generator: `clients` keep-alive connections, each sending one request after
 * another to POST /v1/messages (one JSON message per request) or, with `batch` above 1, to POST
 * /v1/messages/batch (that many per request). node:http rather than fetch: the generator shares
 * the machine with the daemon, and fetch costs it several times the CPU per request.
 */

export interface HttpMessage {
  messageId: string;
  json: Record<string, unknown>;
}

export const HTTP_LATENCY_FROM = 'the request sent on a kept-alive connection to its 202 (for a batch, every message of it gets the batch\'s time)';

function post(agent: http.Agent, options: { host: string; port: number; token: string }, path: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        agent,
        host: options.host,
        port: options.port,
        path,
        method: 'POST',
        headers: { authorization: `Bearer ${options.token}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

/** Sends `messages` over `clients` concurrent keep-alive connections, `batch` per request. */
export async function httpLoad(options: { host: string; port: number; token: string; clients: number; batch: number; messages: HttpMessage[] }): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.clients });
  const result: LoadResult = { ackedAt: new Map(), latencies: [], latencyFrom: HTTP_LATENCY_FROM, failures: 0, startedAt: Date.now(), endedAt: 0 };
  let next = 0;
  const worker = async () => {
    while (next < options.messages.length) {
      const group = options.messages.slice(next, next + options.batch);
      next += group.length;
      const single = options.batch === 1;
      const body = JSON.stringify(single ? group[0]!.json : { messages: group.map((m) => m.json) });
      const start = performance.now();
      try {
        const res = await post(agent, options, single ? '/v1/messages' : '/v1/messages/batch', body);
        if (res.status !== 202) throw new Error(`HTTP ${res.status}: ${res.text.slice(0, 300)}`);
        const refused = single ? [] : (JSON.parse(res.text) as { results: Array<{ index: number; status: string }> }).results.filter((r) => r.status !== 'accepted').map((r) => r.index);
        const elapsed = performance.now() - start;
        const at = Date.now();
        group.forEach((m, i) => {
          if (refused.includes(i)) return void result.failures++;
          result.latencies.push(elapsed);
          result.ackedAt.set(m.messageId, at);
        });
      } catch (err) {
        if (result.failures === 0) console.error(`first failed request: ${(err as Error).message}`);
        result.failures += group.length;
      }
    }
  };
  await Promise.all(Array.from({ length: options.clients }, worker));
  result.endedAt = Date.now();
  agent.destroy();
  return result;
}
