/**
 * End-to-end benchmark: a Rookery daemon (SQLite by default, durable commits) as a real process,
 * a loopback sink, N messages of ~size bytes over M concurrent submission sessions, delivered
 * through the given number of egress IPs (127.0.0.2 ...). Writes JSON to bench/results/ and
 * prints a table.
 *
 *   npm run bench -- --messages 20000 --sessions 32 --ips 4 --size 4096
 *   npm run bench -- --storage postgres     (a scratch database on DATABASE_URL's server)
 *   npm run bench -- --ips 8 --warmup       (every IP on a warm-up plan: caps counted per message)
 *   npm run bench -- --dkim rsa             (sign every message: rsa | ed25519 | dual)
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startDaemonProcess } from '../tests/helpers/daemon-process.ts';
import { createScratchDatabase } from '../tests/helpers/postgres.ts';
import { postgresUrl } from '../tests/helpers/services.ts';
import { startSmtpSink } from '../tests/helpers/smtp-sink.ts';
import { testMessage } from '../tests/helpers/submit.ts';
import { testDaemonConfig } from '../tests/helpers/test-config.ts';
import { countLog, daemonMetrics, histogramMean, processUsage } from './daemon-usage.ts';
import { submitLoad } from './smtp-load.ts';
import { percentile, round } from './stats.ts';

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
const name = args.name ?? `${args.storage}-${ipCount}ips${args.warmup ? '-warmup' : ''}${args.dkim ? `-dkim-${args.dkim}` : ''}`;

const dir = mkdtempSync(join(tmpdir(), 'rookery-bench-'));

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
const sink = await startSmtpSink();
const config = testDaemonConfig({
  dir,
  sink,
  extra: {
    hostname: 'bench.rookery.test',
    storage: scratch ? { driver: 'postgres', url: scratch.url } : { driver: 'sqlite', path: join(dir, 'queue.db') },
    smtp: { maxConnectionsPerClient: sessions + 10 },
    ips: Array.from({ length: ipCount }, (_, i) => ({
      address: `127.0.0.${i + 2}`,
      hostname: `out${i + 1}.rookery.test`,
      ...(args.warmup ? { warmup: { plan: 'bench', start: new Date().toISOString().slice(0, 10) } } : {}),
    })),
    ...(args.warmup ? { warmup: { activeHours: 1, plans: { bench: [10_000_000] } } } : {}),
    ...(args.dkim ? { dkim: { domains: { 'sender.test': { keys: dkimKeys(args.dkim) } } } } : {}),
    // The sink is one loopback "site", not a mailbox provider: default shaping (100 msg/s per IP
    // and site) would cap the run at IPs x 100 msg/s and measure the limit, not the engine.
    ...(process.env.BENCH_SHAPING === 'default' ? {} : { shaping: { default: { messageRate: '1000000/s', connectionRate: '10000/s' } } }),
  },
});
const daemon = await startDaemonProcess(dir, config, { keepLogs: false, nodeArgs: args.profile ? ['--cpu-prof', `--cpu-prof-dir=${args.profile}`] : [] });
const log = countLog(daemon.child.stdout!);

try {
  const batch = Array.from({ length: messages }, (_, i) => {
    const messageId = `<bench-${i}@app.test>`;
    const to = `user${i % 50}@dest${i % 10}.test`;
    return { messageId, from: 'app@sender.test', to, raw: testMessage({ from: 'app@sender.test', to, messageId, bodyBytes: size - 250 }) };
  });
  console.error(`submitting ${messages} messages of ~${batch[0]!.raw.length} bytes over ${sessions} sessions, ${ipCount} egress IPs`);
  const load = await submitLoad({ host: daemon.smtp[0]!.host, port: daemon.smtp[0]!.port, sessions, messages: batch });
  await sink.waitForMessages(load.ackedAt.size, 600_000);
  const usage = processUsage(daemon.pid);
  const metricsText = await daemonMetrics(daemon.api);
  const selection = histogramMean(metricsText, 'rookery_selection_seconds');
  const signing = histogramMean(metricsText, 'rookery_dkim_sign_seconds');
  const harnessCpu = process.cpuUsage();

  const delivered = new Map(sink.messages.map((m) => [m.messageId ?? '', m.receivedAt]));
  const lastDelivery = Math.max(...delivered.values());
  const acceptToDelivered = [...load.ackedAt].map(([id, acked]) => delivered.get(id)! - acked);
  const submitSeconds = (load.endedAt - load.startedAt) / 1000;
  const totalSeconds = (lastDelivery - load.startedAt) / 1000;
  const sources = new Set(sink.messages.map((m) => m.remoteAddress));

  const result = {
    name,
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
    parameters: {
      messages,
      sessions,
      egressIps: ipCount,
      messageBytes: batch[0]!.raw.length,
      storage: scratch ? 'postgres (synchronous_commit=on)' : 'sqlite (WAL, synchronous=FULL)',
      dkim: args.dkim ?? 'none',
    },
    accepted: load.ackedAt.size,
    failedSubmissions: load.failures,
    delivered: delivered.size,
    egressIpsSeen: sources.size,
    acceptedPerSecond: round(load.ackedAt.size / submitSeconds),
    deliveredPerSecondEndToEnd: round(delivered.size / totalSeconds),
    acceptLatencyMs: { p50: round(percentile(load.latencies, 50), 2), p99: round(percentile(load.latencies, 99), 2) },
    acceptToDeliveredMs: { p50: round(percentile(acceptToDelivered, 50), 1), p99: round(percentile(acceptToDelivered, 99), 1) },
    daemon: { ...usage, cpuPerMessageMs: round((usage.cpuSeconds * 1000) / messages, 3) },
    // Everything the daemon logged (info level) from its start to the last delivery.
    log: { bytesPerDelivered: round(log.bytes / delivered.size), linesPerDelivered: round(log.lines / delivered.size, 2), totalMb: round(log.bytes / 1e6, 2) },
    egressSelectionUs: selection,
    dkimSignUs: signing,
    // The load generator and the sink share the machine's other core; if this nears wallSeconds, they are the limit.
    harnessCpuSeconds: round((harnessCpu.user + harnessCpu.system) / 1e6, 2),
    wallSeconds: round(totalSeconds, 2),
  };

  mkdirSync(new URL('results/', import.meta.url), { recursive: true });
  const file = new URL(`results/${result.date.replace(/[:.]/g, '-')}-${name}.json`, import.meta.url);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  console.table({
    'accepted msg/s': result.acceptedPerSecond,
    'delivered msg/s (end to end)': result.deliveredPerSecondEndToEnd,
    'accept latency p50 ms': result.acceptLatencyMs.p50,
    'accept latency p99 ms': result.acceptLatencyMs.p99,
    'accept->delivered p50 ms': result.acceptToDeliveredMs.p50,
    'accept->delivered p99 ms': result.acceptToDeliveredMs.p99,
    'daemon peak RSS MB': result.daemon.peakRssMb,
    'daemon CPU ms / message': result.daemon.cpuPerMessageMs,
    'egress selection µs / message (mean)': result.egressSelectionUs.mean,
    'DKIM signing µs / message (mean)': result.dkimSignUs.mean,
    'log bytes / delivered message': result.log.bytesPerDelivered,
    'daemon CPU s': result.daemon.cpuSeconds,
    'harness (client + sink) CPU s': result.harnessCpuSeconds,
    'wall s': result.wallSeconds,
    'failed submissions': result.failedSubmissions,
  });
  console.log(`written ${file.pathname}`);
} finally {
  daemon.kill('SIGTERM');
  await daemon.exited;
  await sink.close();
  await scratch?.drop();
  rmSync(dir, { recursive: true, force: true });
}
