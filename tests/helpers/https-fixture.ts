import https from 'node:https';
import type { AddressInfo, LookupFunction } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TlsPair } from './test-ca.ts';

/**
 * An HTTPS server on loopback standing in for web servers of the internet (MTA-STS policy hosts,
 * TLS-RPT report endpoints): each request is answered by `handler` and recorded with its body.
 * `lookup` sends every name to it, as a test's DNS would.
 */

export interface RecordedRequest {
  method: string;
  host: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export interface HttpsFixture {
  port: number;
  requests: RecordedRequest[];
  /** Resolves every name to 127.0.0.1. */
  lookup: LookupFunction;
  close(): Promise<void>;
}

export async function startHttpsFixture(pair: TlsPair, handler: (request: RecordedRequest, response: ServerResponse) => void): Promise<HttpsFixture> {
  const requests: RecordedRequest[] = [];
  const server = https.createServer({ key: pair.key, cert: pair.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const recorded = { method: req.method ?? '', host: (req.headers.host ?? '').replace(/:\d+$/, ''), path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) };
      requests.push(recorded);
      handler(recorded, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const lookup = ((_host: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (options?.all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
    else callback(null, '127.0.0.1', 4);
  }) as unknown as LookupFunction;
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    lookup,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
