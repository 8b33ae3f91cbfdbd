import { startSmtpSink, type SinkMessage } from '../tests/helpers/smtp-sink.ts';
import { startPostfixSmtpSink } from './postfix-sink.ts';

/**
 * The destination of a benchmark run, either sink behind one shape: the built-in loopback sink
 * (tests/helpers/smtp-sink.ts, Node, in the benchmark's process: keeps every message, so
 * deliveries are matched to submissions by Message-ID) or Postfix's smtp-sink (C, its own
 * process: counts messages and keeps nothing).
 */

export type SinkKind = 'builtin' | 'smtp-sink';

export interface BenchSink {
  kind: SinkKind;
  host: string;
  port: number;
  /** Messages received so far. */
  received(): number;
  /** When the last message arrived (ms epoch). */
  lastReceivedAt(): number;
  /** The messages themselves, built-in sink only (null: smtp-sink keeps nothing). */
  messages: SinkMessage[] | null;
  /** The sink's own process, whose CPU is the harness's too (null: it runs in this process). */
  pid: number | null;
  waitForMessages(n: number, timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

export async function startBenchSink(kind: SinkKind): Promise<BenchSink> {
  if (kind === 'smtp-sink') {
    const sink = await startPostfixSmtpSink();
    return { kind, messages: null, ...sink };
  }
  const sink = await startSmtpSink();
  return {
    kind,
    host: sink.host,
    port: sink.port,
    received: () => sink.messages.length,
    lastReceivedAt: () => sink.messages.at(-1)?.receivedAt ?? 0,
    messages: sink.messages,
    pid: null,
    waitForMessages: async (n, timeoutMs) => void (await sink.waitForMessages(n, timeoutMs)),
    close: () => sink.close(),
  };
}
