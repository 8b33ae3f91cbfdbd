import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiFailure, BULK_TIMEOUT_MS, callApi, REQUEST_TIMEOUT_MS, type ApiRequest } from '../../src/cli/api/api-client.ts';
import { API_COMMANDS } from '../../src/cli/api/api-commands.ts';

/**
 * The `rookery` API client when the API takes a request and gives no answer: over real HTTP on
 * loopback, to a server that holds each request without answering or drops its connection. A
 * change may then still be running on the daemon, and the operator is told where to look; the
 * bulk operations wait far longer than a read before giving up.
 */

let server: Server | undefined;
const held: ServerResponse[] = [];

afterEach(async () => {
  for (const res of held.splice(0)) res.destroy();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** A server that reads each request and then does `react` with it; its base URL. */
async function serve(react: (req: IncomingMessage, res: ServerResponse) => void): Promise<URL> {
  server = createServer((req, res) => req.resume().on('end', () => react(req, res)));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
}

async function failureOf(base: URL, request: ApiRequest): Promise<string> {
  const err = await callApi({ base, token: 't' }, request).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ApiFailure);
  return (err as ApiFailure).message;
}

describe('the API client without an answer', () => {
  it('gives up after its timeout; a change may still be running, and the audit log will say', async () => {
    const base = await serve((_req, res) => held.push(res));
    const where = `the API at ${base.origin}`;
    expect(await failureOf(base, { method: 'POST', path: 'v1/queue/retry', body: { scope: { domain: 'x.test' } }, timeoutMs: 200 })).toBe(
      `no answer from ${where} within 0.2 s; the operation may still be running, or be done: check \`rookery audit\` before running it again`,
    );
    expect(await failureOf(base, { method: 'GET', path: 'v1/queue', timeoutMs: 200 })).toBe(`no answer from ${where} within 0.2 s`);
  });

  it('says the same when the API drops the connection after taking a change', async () => {
    const base = await serve((req) => req.socket.destroy());
    const where = `the API at ${base.origin}`;
    expect(await failureOf(base, { method: 'DELETE', path: 'v1/messages/m-1' })).toBe(
      `${where} closed the connection before answering; the operation may still be running, or be done: check \`rookery audit\` before running it again`,
    );
    expect(await failureOf(base, { method: 'GET', path: 'v1/messages/m-1' })).toBe(`${where} closed the connection before answering`);
  });

  it('waits 15 minutes for a retry, a bounce and a cancellation, a minute for anything else', () => {
    expect(BULK_TIMEOUT_MS).toBe(15 * 60_000);
    const scope = { domain: 'x.test' };
    expect(API_COMMANDS['queue retry']!.request(scope, []).timeoutMs).toBe(BULK_TIMEOUT_MS);
    expect(API_COMMANDS['queue bounce']!.request({ ...scope, reason: 'spam run' }, []).timeoutMs).toBe(BULK_TIMEOUT_MS);
    expect(API_COMMANDS['messages cancel']!.request({ reason: 'wrong list' }, ['m-1']).timeoutMs).toBe(BULK_TIMEOUT_MS);
    expect(API_COMMANDS['queue pause']!.request({ ...scope, reason: 'r' }, []).timeoutMs).toBeUndefined();
    expect(API_COMMANDS['messages show']!.request({}, ['m-1']).timeoutMs).toBeUndefined();
    expect(REQUEST_TIMEOUT_MS).toBe(60_000);
  });
});
