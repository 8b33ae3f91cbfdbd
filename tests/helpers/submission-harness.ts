import nodemailer from 'nodemailer';
import type { ConfigInput } from '../../src/config/schema.ts';
import { Queue } from '../../src/engine/queue.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Metrics } from '../../src/observability/metrics.ts';
import { resolveConfig } from '../../src/resolved-config.ts';
import { hashPassword } from '../../src/smtp/password-hash.ts';
import { createSubmissionServer, type SubmissionServer, type SubmissionServerDeps } from '../../src/smtp/submission-server.ts';
import { createSqliteStore } from '../../src/storage/sqlite/sqlite-store.ts';
import type { Store } from '../../src/storage/store.ts';
import { createDkimKeyStore } from '../../src/sender-domains/key-store.ts';
import { createDkimSigner } from '../../src/sender-domains/signer.ts';
import { poolAssignerFor } from '../../src/ippool/pool-assignment.ts';
import { createPoolBackend } from '../../src/ippool/backend/create-pool-backend.ts';
import { TenantDirectory } from '../../src/access/tenants.ts';
import { TenantLimits } from '../../src/engine/tenant-limits.ts';
import { SuppressionCheck, suppressionActionFor } from '../../src/engine/suppression-check.ts';
import { manualClock, type ManualClock } from './manual-clock.ts';
import { SmtpTestClient, type SmtpClientOptions } from './smtp-client.ts';
import { createTempDir, type TempDir } from './temp-dir.ts';
import { tlsFixture } from './tls-fixture.ts';

/**
 * A submission server in this process for SMTP tests: real SQLite queue in a temporary
 * directory, real sockets on loopback, a manual clock (for lockout windows), logs and metrics
 * kept for assertions. Everything a test starts is closed by runCleanups(), which each test
 * file calls after every test.
 */

export const APP_PASSWORD = 'app-Secret-7f3k';
export const ANY_PASSWORD = 'any-Secret-q9z2';


export interface Harness {
  server: SubmissionServer;
  store: Store;
  metrics: Metrics;
  logs: Array<Record<string, unknown>>;
  clock: ManualClock;
  /** Listener i's address. */
  at(i?: number): { host: string; port: number };
  /** A raw client to listener i (tracked, closed after the test). */
  connect(i?: number, options?: Partial<SmtpClientOptions>): Promise<SmtpTestClient>;
}

const cleanups: Array<() => Promise<void>> = [];

/** Closes what the last test opened: clients, then the server, then the store and the directory. */
export async function runCleanups(): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
}

/** Closes `close` after the test, before what was opened earlier. */
export function afterTest(close: () => Promise<void>): void {
  cleanups.push(close);
}

export async function startHarness(
  smtp: ConfigInput['smtp'],
  options: Pick<SubmissionServerDeps, 'shutdownGraceMs' | 'reverseLookup'> & { config?: Omit<ConfigInput, 'smtp'> } = {},
): Promise<Harness> {
  const dir: TempDir = await createTempDir('rookery-smtp');
  cleanups.push(() => dir.remove());
  const { config, smtpUsers, dkimKeys } = resolveConfig({ hostname: 'mta.rookery.test', dataDir: dir.path, ...options.config, smtp }, { source: 'test', env: {} });
  const logs: Array<Record<string, unknown>> = [];
  const logger = createLogger('debug', { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const metrics = new Metrics({ processMetrics: false });
  const clock = manualClock();
  const store = createSqliteStore({ path: dir.file('rookery.db'), clock, logger });
  await store.migrate();
  cleanups.push(() => store.close());
  const policy = { assignPool: poolAssignerFor(config), tenants: new TenantDirectory(config.tenants) };
  const suppressions = new SuppressionCheck({ store, clock, action: (tenant) => suppressionActionFor(config, tenant) });
  const queue = new Queue({
    store,
    clock,
    metrics,
    hostname: config.hostname,
    // No keys configured: messages go through the real signer and come out unsigned.
    dkim: createDkimSigner({ keys: createDkimKeyStore({ keys: dkimKeys, resolver: { resolveTxt: async () => [] }, clock, logger }), config: config.dkim, clock, logger }),
    policy: () => policy,
    tenantLimits: new TenantLimits({ ...createPoolBackend({ store, clock }), clock }),
    suppressions,
    onEnqueued: () => undefined,
  });
  const { config: _extra, ...serverOptions } = options;
  const server = createSubmissionServer({ config, users: smtpUsers, tenants: new TenantDirectory(config.tenants), queue, suppressions, tls: await tlsFixture(), logger, metrics, clock, ...serverOptions });
  await server.start();
  cleanups.push(() => server.stop());
  const harness: Harness = {
    server,
    store,
    metrics,
    logs,
    clock,
    at: (i = 0) => server.addresses()[i]!,
    async connect(i = 0, extra = {}) {
      const client = await SmtpTestClient.connect({ ...harness.at(i), host: '127.0.0.1', ...extra });
      cleanups.push(() => client.close());
      return client;
    },
  };
  return harness;
}

export function transport(h: Harness, options: Record<string, unknown>, i = 0) {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: h.at(i).port, tls: { rejectUnauthorized: false }, ...options });
  cleanups.push(async () => t.close());
  return t;
}

export function message(from: string, to: string, extra = ''): Buffer {
  return Buffer.from(`From: <${from}>\r\nTo: <${to}>\r\nSubject: hello\r\n${extra}\r\nHello there.\r\n`);
}

export async function rejections(metrics: Metrics, reason: string): Promise<number> {
  const metric = await metrics.smtpRejections.get();
  return metric.values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

export function queueIdOf(reply: string): string {
  const match = /queued as ([0-9a-f]+)/.exec(reply);
  if (!match) throw new Error(`no queue id in ${reply}`);
  return match[1]!;
}

/** EHLO, MAIL, RCPT on an open client; returns the three replies. */
export async function envelope(client: SmtpTestClient, from: string, to: string[]) {
  const replies = [await client.ehlo(), await client.send(`MAIL FROM:<${from}>`)];
  for (const rcpt of to) replies.push(await client.send(`RCPT TO:<${rcpt}>`));
  return replies;
}

export const users = [
  { username: 'app', password: APP_PASSWORD, allowedSenders: ['*@app.example', 'billing@shop.example'] },
  { username: 'any', passwordHash: '', allowedSenders: ['*'] },
];

export async function usersWithHash() {
  return [users[0]!, { ...users[1]!, passwordHash: await hashPassword(ANY_PASSWORD) }];
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function waitFor(condition: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(20);
  }
}
