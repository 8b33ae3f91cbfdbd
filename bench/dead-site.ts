/**
 * Dead-site benchmark: how much a backlog queued to a destination that refuses every connection
 * costs the rest of the daemon. Runs the same SMTP load (to a live loopback sink) on an empty
 * queue, then with `--backlog` messages already queued to dead sites (inserted into the store
 * before the daemon starts: submitting a million messages over SMTP would take long), then on an
 * empty queue again, and compares accepted msg/s, peak RSS, CPU, connection attempts and log
 * volume. The load starts once the daemon reports the backlog held, or at once with --during-hold
 * (the transition: each backlog row is moved once). Writes JSON to bench/results/ and prints a
 * table.
 *
 *   npm run bench:dead-site -- --backlog 1000000 --messages 20000 [--during-hold]
 */
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { NewMessage } from '../src/storage/store.ts';
import { createSqliteStore } from '../src/storage/sqlite/sqlite-store.ts';
import { startDaemonProcess } from '../tests/helpers/daemon-process.ts';
import { startSmtpSink, type SmtpSink } from '../tests/helpers/smtp-sink.ts';
import { testMessage } from '../tests/helpers/submit.ts';
import { testDaemonConfig } from '../tests/helpers/test-config.ts';
import { countLog, daemonMetrics, metricSum, processUsage } from './daemon-usage.ts';
import { submitLoad } from './smtp-load.ts';
import { percentile, round } from './stats.ts';

const { values: args } = parseArgs({
  options: {
    backlog: { type: 'string', default: '1000000' },
    /** Dead domains the backlog is spread over (each routed to the same refusing port: one site). */
    domains: { type: 'string', default: '10' },
    messages: { type: 'string', default: '20000' },
    sessions: { type: 'string', default: '32' },
    ips: { type: 'string', default: '4' },
    size: { type: 'string', default: '4096' },
    /** How long to wait for the load's mail to be delivered after it was accepted. */
    'deliver-timeout': { type: 'string', default: '180' },
    /** Start the load at once, while the backlog is being held, rather than once it is. */
    'during-hold': { type: 'boolean', default: false },
  },
});
const backlog = Number(args.backlog);
const deadDomains = Array.from({ length: Number(args.domains) }, (_, i) => `dead${i}.test`);
const messages = Number(args.messages);
const sessions = Number(args.sessions);
const ipCount = Number(args.ips);
const size = Number(args.size);

/** A loopback port nothing listens on: connections to it are refused at once. */
async function refusingPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** Queues `count` small messages to the dead domains, straight into the store the daemon will open. */
async function preload(path: string, count: number): Promise<void> {
  const store = createSqliteStore({ path, logger: pino({ level: 'warn' }) });
  await store.migrate();
  const body = testMessage({ from: 'app@sender.test', to: 'someone@dead0.test', messageId: '<backlog@app.test>', bodyBytes: 200 });
  const now = Date.now();
  for (let start = 0; start < count; start += 5000) {
    const batch: NewMessage[] = [];
    for (let i = start; i < Math.min(count, start + 5000); i++) {
      const id = `backlog${String(i).padStart(8, '0')}`;
      batch.push({ id, sender: 'app@sender.test', recipients: [`user${i}@${deadDomains[i % deadDomains.length]}`], messageIdHeader: null, body, submitter: null, source: 'smtp', pool: 'default', clientAddress: null, createdAt: now, dueAt: now });
    }
    await store.enqueue(batch);
  }
  await store.close();
}

/** Waits until the daemon reports the whole backlog held (or gives up after 10 minutes); returns the seconds it took. */
async function backlogHeld(api: { host: string; port: number }, backlog: number): Promise<number | null> {
  const started = Date.now();
  while (Date.now() - started < 600_000) {
    if (metricSum(await daemonMetrics(api), 'rookery_site_held_total') >= backlog) return round((Date.now() - started) / 1000, 1);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return null;
}

async function runPhase(sink: SmtpSink, deadPort: number, queued: number) {
  const dir = mkdtempSync(join(tmpdir(), 'rookery-bench-dead-'));
  try {
    const storagePath = join(dir, 'queue.db');
    const loadStarted = Date.now();
    if (queued) await preload(storagePath, queued);
    const preloadSeconds = (Date.now() - loadStarted) / 1000;
    const config = testDaemonConfig({
      dir,
      sink,
      extra: {
        hostname: 'bench.rookery.test',
        storage: { driver: 'sqlite', path: storagePath },
        smtp: { maxConnectionsPerClient: sessions + 10 },
        ips: Array.from({ length: ipCount }, (_, i) => ({ address: `127.0.0.${i + 2}`, hostname: `out${i + 1}.rookery.test` })),
        // As bench/run.ts: the sink is one loopback site, not a provider to shape for.
        shaping: { default: { messageRate: '1000000/s', connectionRate: '10000/s' } },
        delivery: { routes: { ...Object.fromEntries(deadDomains.map((d) => [d, `127.0.0.1:${deadPort}`])), '*': `127.0.0.1:${sink.port}` } },
      },
    });
    const daemon = await startDaemonProcess(dir, config, { keepLogs: false, startTimeoutMs: 120_000 });
    const log = countLog(daemon.child.stdout!);
    try {
      const heldSeconds = queued && !args['during-hold'] ? await backlogHeld(daemon.api, queued) : null;
      const before = sink.messages.length;
      const batch = Array.from({ length: messages }, (_, i) => {
        const messageId = `<dead-bench-${queued}-${i}@app.test>`;
        const to = `user${i % 50}@live${i % 10}.test`;
        return { messageId, from: 'app@sender.test', to, raw: testMessage({ from: 'app@sender.test', to, messageId, bodyBytes: size - 250 }) };
      });
      const load = await submitLoad({ host: daemon.smtp[0]!.host, port: daemon.smtp[0]!.port, sessions, messages: batch });
      // Behind a dead backlog the other mail may not get through in time: that is a finding, not a failure.
      const delivered = await sink.waitForMessages(before + load.ackedAt.size, Number(args['deliver-timeout']) * 1000).then(
        () => load.ackedAt.size,
        () => sink.messages.length - before,
      );
      const usage = processUsage(daemon.pid);
      const metrics = await daemonMetrics(daemon.api);
      const submitSeconds = (load.endedAt - load.startedAt) / 1000;
      return {
        backlog: queued,
        preloadSeconds: round(preloadSeconds, 1),
        // From the daemon's start until the whole backlog was held (the transition), when waited for.
        heldSeconds,
        accepted: load.ackedAt.size,
        delivered,
        deliveredSecondsAfterLoad: round((Date.now() - load.endedAt) / 1000, 1),
        failedSubmissions: load.failures,
        acceptedPerSecond: round(load.ackedAt.size / submitSeconds),
        acceptLatencyMs: { p50: round(percentile(load.latencies, 50), 2), p99: round(percentile(load.latencies, 99), 2) },
        daemon: usage,
        // Attempts that failed (connection refused by the dead site), and deferrals without one.
        failedAttempts: metricSum(metrics, 'rookery_delivery_outcomes_total', 'disposition="transient"'),
        heldWithoutAttempt: metricSum(metrics, 'rookery_site_held_total'),
        sitesDown: metricSum(metrics, 'rookery_sites_down'),
        logMb: round(log.bytes / 1e6, 2),
        logLines: log.lines,
      };
    } finally {
      daemon.kill('SIGTERM');
      await daemon.exited;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const sink = await startSmtpSink();
try {
  const deadPort = await refusingPort();
  console.error(`load: ${messages} messages over ${sessions} sessions, ${ipCount} egress IPs; backlog: ${backlog} messages to ${deadDomains.length} dead domains`);
  // The empty queue runs before and after, so neither warm-up nor the machine's other load favours a side.
  const normal = await runPhase(sink, deadPort, 0);
  const dead = await runPhase(sink, deadPort, backlog);
  const normalAgain = await runPhase(sink, deadPort, 0);
  const normalPerSecond = (normal.acceptedPerSecond + normalAgain.acceptedPerSecond) / 2;
  const result = {
    name: `dead-site-${backlog}`,
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
    parameters: { backlog, deadDomains: deadDomains.length, messages, sessions, egressIps: ipCount, messageBytes: size },
    normal,
    dead,
    normalAgain,
    acceptanceVsNormal: round(dead.acceptedPerSecond / normalPerSecond, 3),
  };
  mkdirSync(new URL('results/', import.meta.url), { recursive: true });
  const file = new URL(`results/${result.date.replace(/[:.]/g, '-')}-${result.name}.json`, import.meta.url);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  const row = (phase: typeof normal) => ({
    'accepted msg/s': phase.acceptedPerSecond,
    'accept p99 ms': phase.acceptLatencyMs.p99,
    'delivered (of accepted)': `${phase.delivered} / ${phase.accepted}`,
    'peak RSS MB': phase.daemon.peakRssMb,
    'daemon CPU s': phase.daemon.cpuSeconds,
    'failed attempts': phase.failedAttempts,
    'held without attempt': phase.heldWithoutAttempt,
    'backlog held after s': phase.heldSeconds ?? '-',
    'log MB': phase.logMb,
  });
  console.table({ 'empty queue': row(normal), [`${backlog} queued to a dead site`]: row(dead), 'empty queue again': row(normalAgain) });
  console.log(`acceptance with the dead backlog: ${Math.round(result.acceptanceVsNormal * 100)} % of normal; written ${file.pathname}`);
} finally {
  await sink.close();
}
