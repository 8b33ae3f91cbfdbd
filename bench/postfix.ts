/**
 * Comparison benchmark: a stock Postfix on this machine, loaded the way `npm run bench --
 * --client smtp-source --sink smtp-sink` loads Rookery. For each connection mode it sets up a
 * throwaway Postfix instance (tests/helpers/postfix-instance.ts) relaying to Postfix's smtp-sink on
 * loopback, drives it with smtp-source (-s sessions, -m messages, -l size; -d in `reuse` mode,
 * which in smtp-source means "send the next message over the same connection"), waits until the
 * sink has received every message, writes JSON to bench/results/ and prints a table, then stops
 * the instance and removes its folder (also when the run fails or is interrupted).
 *
 *   npm run bench:postfix -- --messages 20000 --sessions 20 --size 4096 --connection both
 *
 * Reported: accepted msg/s (smtp-source's wall time), delivered msg/s end to end (from the start
 * of smtp-source to the sink's last message), Postfix's CPU (master and every daemon). No latency
 * percentiles: smtp-source reports no per-message times. Needs root and the postfix package.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { endedChildrenCpuSeconds, processUsage } from './daemon-usage.ts';
import { freePort } from '../tests/helpers/free-port.ts';
import { startPostfixInstance, type PostfixInstance } from '../tests/helpers/postfix-instance.ts';
import { startPostfixSmtpSink, type PostfixSmtpSink } from './postfix-sink.ts';
import type { ConnectionMode } from './smtp-load.ts';
import { runSmtpSource } from './smtp-source.ts';
import { round } from './stats.ts';

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '20000' },
    sessions: { type: 'string', default: '20' },
    size: { type: 'string', default: '4096' },
    /** new (a connection per message), reuse (smtp-source -d), or both, one after the other. */
    connection: { type: 'string', default: 'both' },
  },
});
const messages = Number(args.messages);
const sessions = Number(args.sessions);
const size = Number(args.size);
if (!['new', 'reuse', 'both'].includes(args.connection)) throw new Error('--connection is new, reuse or both');
const modes: ConnectionMode[] = args.connection === 'both' ? ['reuse', 'new'] : [args.connection as ConnectionMode];

// An interrupted run exits through process.exit, so the 'exit' listeners of the Postfix instance
// and the sink stop them and remove the instance's folder.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`${signal}: stopping Postfix and removing its folder`);
    process.exit(130);
  });
}

async function measure(connection: ConnectionMode) {
  const sink = await startPostfixSmtpSink();
  let postfix: PostfixInstance | undefined;
  try {
    postfix = await startPostfixInstance({ port: await freePort(), relay: sink });
    return await measureWith(postfix, sink, connection);
  } finally {
    await postfix?.stop();
    await sink.close();
  }
}

async function measureWith(postfix: PostfixInstance, sink: PostfixSmtpSink, connection: ConnectionMode) {
  console.error(`postfix ${postfix.version}: ${messages} messages with ${size} body bytes over ${sessions} sessions (${connection} connections)`);

  const cpuBefore = postfix.cpuSeconds();
  const harnessBefore = endedChildrenCpuSeconds();
  const load = await runSmtpSource({ host: postfix.host, port: postfix.port, sessions, messages, bodyBytes: size, from: 'app@sender.test', to: 'user@dest.test', connection });
  await sink.waitForMessages(load.accepted, 600_000);
  const postfixCpu = postfix.cpuSeconds() - cpuBefore;
  const harnessCpu = endedChildrenCpuSeconds() - harnessBefore + processUsage(sink.pid).cpuSeconds;
  const submitSeconds = (load.endedAt - load.startedAt) / 1000;
  // End to end: until every message was both answered and delivered (the last delivery can come
  // before the client has closed its sessions).
  const totalSeconds = (Math.max(sink.lastReceivedAt(), load.endedAt) - load.startedAt) / 1000;
  const delivered = sink.received();

  const result = {
    name: `postfix-${connection}`,
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
    parameters: {
      messages,
      sessions,
      connection,
      client: 'smtp-source (Postfix)',
      clientCommand: load.command,
      sink: 'smtp-sink (Postfix)',
      // smtp-source -l: the body; it adds From, To, Date and Message-Id (about 130 bytes).
      smtpSourceBodyBytes: size,
      postfix: { version: postfix.version, mainCf: postfix.settings.filter((s) => !/_directory|maillog_file/.test(s)), queue: 'on the filesystem of os.tmpdir(), as the Rookery benchmark\'s SQLite file' },
    },
    accepted: load.accepted,
    delivered,
    deliveredCountedBy: 'number of messages at the sink',
    acceptedPerSecond: round(load.accepted / submitSeconds),
    deliveredPerSecondEndToEnd: round(delivered / totalSeconds),
    acceptLatencyMs: { p50: null, p99: null, from: 'null: smtp-source reports no per-message times' },
    // The master and all its daemons (smtpd, cleanup, qmgr, smtp, ...), from the load's start to the last delivery.
    postfix: { cpuSeconds: round(postfixCpu, 2), cpuPerMessageMs: round((postfixCpu * 1000) / messages, 3) },
    harnessCpuSeconds: round(harnessCpu, 2),
    wallSeconds: round(totalSeconds, 2),
  };
  mkdirSync(new URL('results/', import.meta.url), { recursive: true });
  const file = new URL(`results/${result.date.replace(/[:.]/g, '-')}-${result.name}.json`, import.meta.url);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  console.table({
    'connection (new: one per message)': connection,
    'accepted msg/s': result.acceptedPerSecond,
    'delivered msg/s (end to end)': result.deliveredPerSecondEndToEnd,
    'Postfix CPU ms / message': result.postfix.cpuPerMessageMs,
    'Postfix CPU s': result.postfix.cpuSeconds,
    'harness (smtp-source + smtp-sink) CPU s': result.harnessCpuSeconds,
    'wall s': result.wallSeconds,
  });
  console.log(`written ${file.pathname}`);
}

for (const connection of modes) await measure(connection);
