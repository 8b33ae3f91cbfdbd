/**
 * End-to-end benchmark: a Rookery daemon (SQLite by default, durable commits) as a real process,
 * a loopback sink, N messages of ~size bytes over M concurrent submission sessions, delivered
 * through the given number of egress IPs (127.0.0.2 ...). Waits until every accepted message
 * reached the sink, then writes JSON to bench/results/ and prints a table.
 *
 *   npm run bench -- --messages 20000 --sessions 32 --ips 4 --size 4096
 *   npm run bench -- --storage postgres     (a scratch database on DATABASE_URL's server)
 *   npm run bench -- --ips 8 --warmup       (every IP on a warm-up plan: caps counted per message)
 *   npm run bench -- --dkim rsa             (sign every message: rsa | ed25519 | dual)
 *   npm run bench -- --dkim rsa --dkim-workers 0   (signing threads; 0 signs on the event loop)
 *   npm run bench -- --connection new       (a fresh SMTP connection per message: connect, EHLO,
 *                                            MAIL, RCPT, DATA, QUIT; default reuse: each session
 *                                            keeps its connection, as a pooling client does)
 *   npm run bench -- --client smtp-source   (load from Postfix's smtp-source instead of the
 *                                            built-in client: -s sessions -m messages -l size,
 *                                            with -d under --connection reuse)
 *   npm run bench -- --sink smtp-sink       (deliver to Postfix's smtp-sink instead of the
 *                                            built-in sink, which runs in this process)
 *   npm run bench -- --http                 (submit over the HTTP API instead: POST /v1/messages,
 *                                            JSON composed by the daemon, one request per message
 *                                            over --sessions keep-alive connections)
 *   npm run bench -- --http --batch 100     (POST /v1/messages/batch, 100 messages a request)
 *   npm run bench -- --suppressed 1000000   (that many entries on the suppression list of the
 *                                            run's tenant first, none of them the run's recipients)
 *   npm run bench -- --webhooks             (an endpoint on a receiver in this process subscribed
 *                                            to every event: message.accepted and
 *                                            recipient.delivered for each message; reports the
 *                                            events/s dispatched beside the delivered msg/s)
 *   npm run bench -- --webhooks --webhook-batch 100  (the endpoint takes up to 100 events per POST)
 *
 * Accept latency is measured per message by the built-in client only: in `reuse` mode from MAIL
 * FROM, in `new` mode from the start of the connection (what the application waits for), to the
 * 250 after the data; the JSON says which. smtp-source reports no per-message times, so with it
 * the latencies are null and the accepted rate comes from its wall time. Deliveries are matched
 * to submissions by Message-ID with the built-in client and sink, and counted by number otherwise.
 * `npm run bench:postfix` (bench/postfix.ts) runs the same smtp-source load against a stock Postfix.
 */
import { generateKeyPairSync } from 'node:crypto';
import { open } from 'node:fs/promises';
import pg from 'pg';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startDaemonProcess } from '../tests/helpers/daemon-process.ts';
import { createScratchDatabase } from '../tests/helpers/postgres.ts';
import { postgresUrl } from '../tests/helpers/services.ts';
import { testMessage } from '../tests/helpers/submit.ts';
import { testDaemonConfig } from '../tests/helpers/test-config.ts';
import { startBenchSink } from './bench-sink.ts';
import { countLog, daemonMetrics, endedChildrenCpuSeconds, histogramMean, mainThreadCpuSeconds, metricSum, processUsage } from './daemon-usage.ts';
import { submitLoad, type ConnectionMode } from './smtp-load.ts';
import { httpLoad } from './http-load.ts';
import { generateApiToken, hashApiToken } from '../src/access/api-token.ts';
import { runSmtpSource } from './smtp-source.ts';
import { startBenchWebhookReceiver } from './webhook-receiver.ts';
import { percentile, round } from './stats.ts';
import { systemClock } from '../src/clock.ts';
import { MAX_EVENTS_PER_REQUEST } from '../src/storage/webhook-outbox.ts';
import { createLogger } from '../src/observability/logger.ts';
import { createStore } from '../src/storage/create-store.ts';

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '20000' },
    sessions: { type: 'string', default: '32' },
    ips: { type: 'string', default: '4' },
    size: { type: 'string', default: '4096' },
    storage: { type: 'string', default: 'sqlite' },
    /** Put every IP on a warm-up plan whose caps never bind, to measure the cost of counting. */
    warmup: { type: 'boolean', default: false },
    /** DKIM-sign every message at acceptance: rsa (2048), ed25519, or dual (both). */
    dkim: { type: 'string' },
    /** dkim.workers for the daemon (signing threads; 0: on the event loop); default: the daemon's. */
    'dkim-workers': { type: 'string' },
    /** reuse: each session keeps its connection; new: one connection per message. */
    connection: { type: 'string', default: 'reuse' },
    /** builtin (nodemailer, per-message latencies) or smtp-source (Postfix's load generator). */
    client: { type: 'string', default: 'builtin' },
    /** builtin (Node, in this process, keeps every message) or smtp-sink (Postfix's, counts). */
    sink: { type: 'string', default: 'builtin' },
    /** Submit over the HTTP API (POST /v1/messages, or /batch with --batch above 1) instead of SMTP. */
    http: { type: 'boolean', default: false },
    /** Messages per HTTP request (with --http): 1 is POST /v1/messages, more is /v1/messages/batch. */
    batch: { type: 'string', default: '1' },
    /**
     * Entries on the suppression list before the run, for the tenant the run sends for (SMTP: none,
     * HTTP: bench); the run's recipients are not among them, so it measures the lookups' cost.
     */
    suppressed: { type: 'string', default: '0' },
    /** Register a webhook endpoint for every event on a receiver in this process. */
    webhooks: { type: 'boolean', default: false },
    /** webhooks.concurrency of the run: POSTs in flight to the one endpoint. */
    'webhook-concurrency': { type: 'string', default: '8' },
    /** The endpoint's maxEventsPerRequest: events per POST at most (1: each alone). */
    'webhook-batch': { type: 'string', default: '1' },
    name: { type: 'string' },
    /** Write a V8 CPU profile of the daemon to this folder (open it in Chrome DevTools). */
    profile: { type: 'string' },
  },
});
const messages = Number(args.messages);
const sessions = Number(args.sessions);
const ipCount = Number(args.ips);
const size = Number(args.size);
if (args.storage !== 'sqlite' && args.storage !== 'postgres') throw new Error('--storage is sqlite or postgres');
if (args.dkim && !['rsa', 'ed25519', 'dual'].includes(args.dkim)) throw new Error('--dkim is rsa, ed25519 or dual');
if (args.connection !== 'new' && args.connection !== 'reuse') throw new Error('--connection is new or reuse');
if (args.client !== 'builtin' && args.client !== 'smtp-source') throw new Error('--client is builtin or smtp-source');
if (args.sink !== 'builtin' && args.sink !== 'smtp-sink') throw new Error('--sink is builtin or smtp-sink');
const connection: ConnectionMode = args.connection;
const viaSmtpSource = args.client === 'smtp-source';
const batchSize = Number(args.batch);
if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 1000) throw new Error('--batch is 1 to 1000');
if (args.http && viaSmtpSource) throw new Error('--http sends with its own client; leave out --client');
const suppressed = Number(args.suppressed);
if (!Number.isSafeInteger(suppressed) || suppressed < 0) throw new Error('--suppressed is a count of entries');
const webhookBatch = Number(args['webhook-batch']);
if (!Number.isInteger(webhookBatch) || webhookBatch < 1 || webhookBatch > MAX_EVENTS_PER_REQUEST) throw new Error(`--webhook-batch is 1 to ${MAX_EVENTS_PER_REQUEST}`);
const httpToken = generateApiToken();
/** Registers the webhook endpoint (a token of no tenant: SMTP mail of the run has none). */
const adminToken = generateApiToken();
const name =
  args.name ??
  [
    `${args.storage}-${ipCount}ips-${args.http ? `http${batchSize > 1 ? `-batch${batchSize}` : ''}` : connection}`,
    args.warmup ? '-warmup' : '',
    args.dkim ? `-dkim-${args.dkim}` : '',
    args['dkim-workers'] !== undefined ? `-workers${args['dkim-workers']}` : '',
    viaSmtpSource ? '-smtp-source' : '',
    args.sink === 'smtp-sink' ? '-smtp-sink' : '',
    suppressed > 0 ? `-suppressed${suppressed}` : '',
    args.webhooks ? '-webhooks' : '',
    args.webhooks && webhookBatch > 1 ? `-batch${webhookBatch}` : '',
  ].join('');

const dir = mkdtempSync(join(tmpdir(), 'rookery-bench-'));
// An interrupted run stops its daemon and removes its folder and scratch database, as a finished
// one does (the Postfix sink stops itself on exit).
let daemonToStop: { kill(signal: NodeJS.Signals): void } | null = null;
let scratchToDrop: { drop(): Promise<unknown> } | null = null;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`${signal}: stopping the daemon and removing ${dir}${scratchToDrop ? ' and the scratch database' : ''}`);
    daemonToStop?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    // WITH (FORCE): the killed daemon's connections may not be gone yet.
    void Promise.resolve(scratchToDrop?.drop())
      .catch((err: unknown) => console.error(`the scratch database was not dropped: ${(err as Error).message}`))
      .finally(() => process.exit(130));
  });
}

/** Keys for the sender's domain (app@sender.test), written into the run's folder. */
function dkimKeys(kind: string): Array<{ selector: string; privateKey: string }> {
  const kinds = kind === 'dual' ? ['rsa', 'ed25519'] : [kind];
  return kinds.map((k) => {
    const { privateKey } = k === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519');
    const path = join(dir, `sender.test.${k}.pem`);
    writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    return { selector: `bench-${k}`, privateKey: path };
  });
}

const scratch = args.storage === 'postgres' ? await createScratchDatabase(postgresUrl(), 'bench') : null;
scratchToDrop = scratch;
const storage = scratch ? ({ driver: 'postgres', url: scratch.url } as const) : ({ driver: 'sqlite', path: join(dir, 'queue.db') } as const);

/**
 * Fills the suppression list through the store, in chunks, before the daemon starts: addresses
 * at the run's destination domains that the run never sends to.
 */
async function preloadSuppressions(count: number): Promise<number> {
  if (count === 0) return 0;
  const started = performance.now();
  const store = await createStore({ ...storage, path: storage.driver === 'sqlite' ? storage.path : '' }, { logger: createLogger('silent'), clock: systemClock });
  try {
    await store.migrate();
    const tenant = args.http ? 'bench' : null;
    for (let from = 0; from < count; from += PRELOAD_CHUNK) {
      const createdAt = Date.now();
      const entries = Array.from({ length: Math.min(PRELOAD_CHUNK, count - from) }, (_, k) => ({
        tenant,
        address: `suppressed-${from + k}@dest${(from + k) % 10}.test`,
        reason: 'hard-bounce' as const,
        source: null,
        createdAt,
        expiresAt: null,
      }));
      await store.addSuppressions(entries);
      if ((from / PRELOAD_CHUNK) % 10 === 9) console.error(`suppression list: ${from + entries.length} of ${count}`);
    }
  } finally {
    await store.close();
  }
  // Written, but maybe not on disk yet: the run's first sync of the database file would then
  // flush the whole preload and be measured as the run's. So it goes to disk now.
  if (storage.driver === 'sqlite') {
    const file = await open(storage.path, 'r+');
    await file.sync().finally(() => file.close());
  } else {
    const client = new pg.Client({ connectionString: storage.url });
    await client.connect();
    await client.query('CHECKPOINT').finally(() => client.end());
  }
  return (performance.now() - started) / 1000;
}
const PRELOAD_CHUNK = 50_000;
const cpuBeforePreload = process.cpuUsage();
const preloadSeconds = await preloadSuppressions(suppressed);
// The preload runs in this process: its CPU is not the harness's share of the run.
const preloadCpu = process.cpuUsage(cpuBeforePreload);
if (suppressed > 0) console.error(`suppression list: ${suppressed} entries loaded in ${round(preloadSeconds, 1)} s`);
const sink = await startBenchSink(args.sink);
const receiver = args.webhooks ? await startBenchWebhookReceiver() : null;
const config = testDaemonConfig({
  dir,
  sink,
  extra: {
    hostname: 'bench.rookery.test',
    storage,
    // Headroom over the sessions: with a connection per message, a session's previous connection
    // may not be closed on the daemon's side yet when its next one arrives.
    smtp: { maxConnectionsPerClient: 2 * sessions + 10 },
    // A sender token sends for a tenant: the HTTP runs take the tenant's checks (no rate or quota).
    api: {
      tokens: [
        { name: 'bench', role: 'sender', tenant: 'bench', hash: hashApiToken(httpToken), allowedSenders: ['*@sender.test'] },
        { name: 'bench-admin', role: 'admin', hash: hashApiToken(adminToken) },
      ],
    },
    // The receiver is on loopback.
    ...(args.webhooks ? { webhooks: { allowPrivateNetworks: true, concurrency: Number(args['webhook-concurrency']) } } : {}),
    tenants: { bench: { senderDomains: ['sender.test'] } },
    ips: Array.from({ length: ipCount }, (_, i) => ({
      address: `127.0.0.${i + 2}`,
      hostname: `out${i + 1}.rookery.test`,
      ...(args.warmup ? { warmup: { plan: 'bench', start: new Date().toISOString().slice(0, 10) } } : {}),
    })),
    ...(args.warmup ? { warmup: { activeHours: 1, plans: { bench: [10_000_000] } } } : {}),
    ...(args.dkim
      ? { dkim: { domains: { 'sender.test': { keys: dkimKeys(args.dkim) } }, ...(args['dkim-workers'] !== undefined ? { workers: Number(args['dkim-workers']) } : {}) } }
      : {}),
    // The sink is one loopback "site", not a mailbox provider: default shaping (100 msg/s per IP
    // and site) would cap the run at IPs x 100 msg/s and measure the limit, not the engine.
    ...(process.env.BENCH_SHAPING === 'default' ? {} : { shaping: { default: { messageRate: '1000000/s', connectionRate: '10000/s' } } }),
  },
});
const daemon = await startDaemonProcess(dir, config, { keepLogs: false, nodeArgs: args.profile ? ['--cpu-prof', `--cpu-prof-dir=${args.profile}`] : [] });
daemonToStop = daemon;
const log = countLog(daemon.child.stdout!);
const target = { host: daemon.smtp[0]!.host, port: daemon.smtp[0]!.port };
if (receiver) {
  // Every event, for the tenant the run's mail is sent for (SMTP: none; HTTP: the token's).
  const res = await fetch(`http://${daemon.api.host}:${daemon.api.port}/v1/webhooks`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      url: receiver.url,
      eventTypes: ['message.accepted', 'recipient.delivered', 'recipient.deferred', 'recipient.bounced', 'message.cancelled'],
      maxEventsPerRequest: webhookBatch,
      ...(args.http ? { tenant: 'bench' } : {}),
    }),
  });
  if (res.status !== 201) throw new Error(`POST /v1/webhooks: ${res.status} ${await res.text()}`);
  receiver.verifyWith(((await res.json()) as { secret: string }).secret);
}

/** One shape for both clients; acked and latencies only from the built-in one. */
async function load() {
  if (viaSmtpSource) {
    console.error(`smtp-source: ${messages} messages with ${size} body bytes over ${sessions} sessions (${connection} connections), ${ipCount} egress IPs`);
    const run = await runSmtpSource({ ...target, sessions, messages, bodyBytes: size, from: 'app@sender.test', to: 'user@dest.test', connection });
    return { accepted: run.accepted, startedAt: run.startedAt, endedAt: run.endedAt, failures: 0, acked: null, latencies: null, latencyFrom: null, command: run.command, messageBytes: null };
  }
  if (args.http) {
    // The same size as the SMTP runs' messages: the composed MIME (headers, text part) comes to about `size` bytes.
    const text = `${'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\n'.repeat(Math.ceil((size - 450) / 73))}`.slice(0, size - 450);
    const load = Array.from({ length: messages }, (_, i) => {
      const messageId = `<bench-${i}@app.test>`;
      return { messageId, json: { from: 'app@sender.test', to: `user${i % 50}@dest${i % 10}.test`, subject: `Bench message ${i}`, text, headers: { 'Message-ID': messageId } } };
    });
    console.error(`posting ${messages} JSON messages of ~${size} bytes, ${batchSize} a request, over ${sessions} keep-alive connections, ${ipCount} egress IPs`);
    const run = await httpLoad({ ...daemon.api, token: httpToken, clients: sessions, batch: batchSize, messages: load });
    return { accepted: run.ackedAt.size, startedAt: run.startedAt, endedAt: run.endedAt, failures: run.failures, acked: run.ackedAt, latencies: run.latencies, latencyFrom: run.latencyFrom, command: null, messageBytes: null };
  }
  const batch = Array.from({ length: messages }, (_, i) => {
    const messageId = `<bench-${i}@app.test>`;
    const to = `user${i % 50}@dest${i % 10}.test`;
    return { messageId, from: 'app@sender.test', to, raw: testMessage({ from: 'app@sender.test', to, messageId, bodyBytes: size - 250 }) };
  });
  console.error(`submitting ${messages} messages of ~${batch[0]!.raw.length} bytes over ${sessions} sessions (${connection} connections), ${ipCount} egress IPs`);
  const run = await submitLoad({ ...target, sessions, connection, messages: batch });
  return { accepted: run.ackedAt.size, startedAt: run.startedAt, endedAt: run.endedAt, failures: run.failures, acked: run.ackedAt, latencies: run.latencies, latencyFrom: run.latencyFrom, command: null, messageBytes: batch[0]!.raw.length };
}

try {
  const submitted = await load();
  await sink.waitForMessages(submitted.accepted, 600_000);
  // Two events a message: accepted and delivered.
  await receiver?.waitFor(2 * submitted.accepted, 600_000);
  const usage = processUsage(daemon.pid);
  const mainThreadCpu = mainThreadCpuSeconds(daemon.pid);
  const metricsText = await daemonMetrics(daemon.api);
  const selection = histogramMean(metricsText, 'rookery_selection_seconds');
  const signing = histogramMean(metricsText, 'rookery_dkim_sign_seconds');
  const ownCpu = process.cpuUsage();
  // smtp-source has ended (its CPU is in our children's); smtp-sink is still running.
  const harnessCpuSeconds = (ownCpu.user + ownCpu.system - preloadCpu.user - preloadCpu.system) / 1e6 + endedChildrenCpuSeconds() + (sink.pid ? processUsage(sink.pid).cpuSeconds : 0);

  // Matched by Message-ID where both ends know them; otherwise counted at the sink.
  const byId = submitted.acked && sink.messages ? new Map(sink.messages.map((m) => [m.messageId ?? '', m.receivedAt])) : null;
  const delivered = byId ? [...submitted.acked!.keys()].filter((id) => byId.has(id)).length : sink.received();
  const acceptToDelivered = byId ? [...submitted.acked!].map(([id, acked]) => byId.get(id)! - acked) : null;
  const submitSeconds = (submitted.endedAt - submitted.startedAt) / 1000;
  // End to end: until every message was both answered and delivered (the last delivery can come
  // before the client has closed its sessions).
  const totalSeconds = (Math.max(sink.lastReceivedAt(), submitted.endedAt) - submitted.startedAt) / 1000;
  const latency = (values: number[] | null, digits: number) => ({
    p50: values ? round(percentile(values, 50), digits) : null,
    p99: values ? round(percentile(values, 99), digits) : null,
  });

  const result = {
    name,
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
    parameters: {
      messages,
      sessions,
      egressIps: ipCount,
      connection: args.http ? 'HTTP keep-alive' : connection,
      client: args.http ? `builtin HTTP (node:http, ${batchSize === 1 ? 'POST /v1/messages' : `POST /v1/messages/batch, ${batchSize} a request`})` : viaSmtpSource ? 'smtp-source (Postfix)' : 'builtin (nodemailer SMTPConnection)',
      clientCommand: submitted.command,
      sink: sink.kind === 'smtp-sink' ? 'smtp-sink (Postfix)' : 'builtin (tests/helpers/smtp-sink.ts, in the harness process)',
      messageBytes: submitted.messageBytes,
      // smtp-source -l: the body; it adds From, To, Date and Message-Id (about 130 bytes).
      smtpSourceBodyBytes: viaSmtpSource ? size : null,
      storage: scratch ? 'postgres (synchronous_commit=on)' : 'sqlite (WAL, synced before each answer)',
      dkim: args.dkim ?? 'none',
      dkimWorkers: args.dkim ? (args['dkim-workers'] ?? 'one per core') : null,
      suppressionEntries: suppressed,
      suppressionPreloadSeconds: suppressed > 0 ? round(preloadSeconds, 1) : null,
    },
    accepted: submitted.accepted,
    failedSubmissions: submitted.failures,
    delivered,
    deliveredCountedBy: byId ? 'Message-ID' : 'number of messages at the sink',
    egressIpsSeen: sink.messages ? new Set(sink.messages.map((m) => m.remoteAddress)).size : null,
    acceptedPerSecond: round(submitted.accepted / submitSeconds),
    deliveredPerSecondEndToEnd: round(delivered / totalSeconds),
    acceptLatencyMs: {
      ...latency(submitted.latencies, 2),
      from: submitted.latencyFrom ?? 'null: smtp-source reports no per-message times',
    },
    acceptToDeliveredMs: {
      ...latency(acceptToDelivered, 1),
      ...(acceptToDelivered ? {} : { why: 'null: needs per-message 250 times and arrivals by Message-ID (built-in client and sink)' }),
    },
    daemon: { ...usage, cpuPerMessageMs: round((usage.cpuSeconds * 1000) / messages, 3), mainThreadCpuPerMessageMs: round((mainThreadCpu * 1000) / messages, 3) },
    // Everything the daemon logged (info level) from its start to the last delivery.
    log: { bytesPerDelivered: round(log.bytes / delivered), linesPerDelivered: round(log.lines / delivered, 2), totalMb: round(log.bytes / 1e6, 2) },
    egressSelectionUs: selection,
    dkimSignUs: signing,
    // The load generator and the sink (whichever they are) share the machine with the daemon; if
    // this nears wallSeconds, they are the limit.
    harnessCpuSeconds: round(harnessCpuSeconds, 2),
    wallSeconds: round(totalSeconds, 2),
    webhooks: receiver
      ? {
          concurrency: Number(args['webhook-concurrency']),
          maxEventsPerRequest: webhookBatch,
          events: receiver.received(),
          requests: receiver.requests(),
          byType: Object.fromEntries(receiver.byType),
          // From the first event to the last: the rate the dispatcher kept while mail flowed.
          eventsPerSecond: round(receiver.received() / ((receiver.lastAt() - receiver.firstAt()) / 1000)),
          // How long after the last message reached the sink its last event reached the receiver.
          lastEventAfterLastDeliveryMs: receiver.lastAt() - sink.lastReceivedAt(),
          verified: receiver.verified(),
          outcomes: { delivered: metricSum(metricsText, 'rookery_webhook_deliveries_total', 'outcome="delivered"'), retry: metricSum(metricsText, 'rookery_webhook_deliveries_total', 'outcome="retry"') },
          postMeanUs: histogramMean(metricsText, 'rookery_webhook_delivery_seconds'),
        }
      : null,
  };

  mkdirSync(new URL('results/', import.meta.url), { recursive: true });
  const file = new URL(`results/${result.date.replace(/[:.]/g, '-')}-${name}.json`, import.meta.url);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  console.table({
    'connection (new: one per message)': result.parameters.connection,
    'client -> sink': `${args.http ? `http, ${batchSize} a request` : args.client} -> ${args.sink}`,
    'accepted msg/s': result.acceptedPerSecond,
    'delivered msg/s (end to end)': result.deliveredPerSecondEndToEnd,
    [`accept latency p50 ms${connection === 'new' ? ' (from connect)' : ''}`]: result.acceptLatencyMs.p50,
    [`accept latency p99 ms${connection === 'new' ? ' (from connect)' : ''}`]: result.acceptLatencyMs.p99,
    'accept->delivered p50 ms': result.acceptToDeliveredMs.p50,
    'accept->delivered p99 ms': result.acceptToDeliveredMs.p99,
    'daemon peak RSS MB': result.daemon.peakRssMb,
    'daemon CPU ms / message': result.daemon.cpuPerMessageMs,
    'main thread CPU ms / message': result.daemon.mainThreadCpuPerMessageMs,
    'egress selection µs / message (mean)': result.egressSelectionUs.mean,
    'DKIM signing µs / message (mean)': result.dkimSignUs.mean,
    'log bytes / delivered message': result.log.bytesPerDelivered,
    'daemon CPU s': result.daemon.cpuSeconds,
    'harness (client + sink) CPU s': result.harnessCpuSeconds,
    'wall s': result.wallSeconds,
    'failed submissions': result.failedSubmissions,
    ...(result.webhooks
      ? {
          'webhook events received': result.webhooks.events,
          'webhook POSTs': result.webhooks.requests,
          'webhook events/s (first to last)': result.webhooks.eventsPerSecond,
          'last event after last delivery ms': result.webhooks.lastEventAfterLastDeliveryMs,
          'webhook signatures checked / failed': `${result.webhooks.verified.checked} / ${result.webhooks.verified.failed}`,
        }
      : {}),
  });
  console.log(`written ${file.pathname}`);
} finally {
  daemon.kill('SIGTERM');
  await daemon.exited;
  await sink.close();
  await receiver?.close();
  await scratch?.drop();
  rmSync(dir, { recursive: true, force: true });
}
