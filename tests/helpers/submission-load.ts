import type { SmtpSink } from './smtp-sink.ts';
import { submissionClient, testMessage, type SubmitTarget } from './submit.ts';
import { until } from './until.ts';

/**
 * Submission under load for the fault tests: SMTP sessions that each send one message after
 * another until stopped, recording which Message-IDs were answered 250 and how the others were
 * refused. What a fault test then asserts is that every acknowledged message reaches the sink.
 */
export interface SubmissionLoad {
  /** Message-IDs answered 250, in order. */
  readonly acknowledged: Set<string>;
  /** Refusals by reply code and enhanced code ("451 4.3.0"), or by error code when there was no reply. */
  readonly refusals: Map<string, number>;
  /** Total refusals so far. */
  refused(): number;
  /** Resolves once `n` more messages than now were answered 250. */
  moreAcknowledged(n: number, timeoutMs?: number): Promise<void>;
  /** Resolves once `n` more messages than now were refused. */
  moreRefused(n: number, timeoutMs?: number): Promise<void>;
  /** Stops sending; resolves once every session's last message has its answer. */
  stop(): Promise<void>;
}

/** Pause after a refusal, so a session facing a daemon that refuses everything does not spin. */
const REFUSAL_PAUSE_MS = 50;

export function startSubmissionLoad(target: SubmitTarget, options: { sessions: number; prefix: string; recipient?: (i: number) => string }): SubmissionLoad {
  const client = submissionClient(target, options.sessions);
  const acknowledged = new Set<string>();
  const refusals = new Map<string, number>();
  let refusedTotal = 0;
  let next = 0;
  let stopped = false;

  async function session(): Promise<void> {
    while (!stopped) {
      const i = next++;
      const messageId = `<${options.prefix}-${i}@app.test>`;
      const to = options.recipient?.(i) ?? `user${i % 7}@dest.test`;
      try {
        await client.send('app@sender.test', [to], testMessage({ from: 'app@sender.test', to, messageId }));
        acknowledged.add(messageId);
      } catch (err) {
        const key = refusalKey(err);
        refusals.set(key, (refusals.get(key) ?? 0) + 1);
        refusedTotal++;
        await new Promise((resolve) => setTimeout(resolve, REFUSAL_PAUSE_MS));
      }
    }
  }
  const sessions = Array.from({ length: options.sessions }, () => session());

  let stopping: Promise<void> | undefined;
  return {
    acknowledged,
    refusals,
    refused: () => refusedTotal,
    moreAcknowledged(n, timeoutMs = 30_000) {
      const target = acknowledged.size + n;
      return until(() => acknowledged.size >= target, `${target} messages answered 250 (have ${acknowledged.size})`, timeoutMs);
    },
    moreRefused(n, timeoutMs = 30_000) {
      const target = refusedTotal + n;
      return until(() => refusedTotal >= target, `${target} refused submissions (have ${refusedTotal})`, timeoutMs);
    },
    stop() {
      stopped = true;
      stopping ??= Promise.all(sessions).then(() => client.close());
      return stopping;
    },
  };
}

function refusalKey(err: unknown): string {
  const e = err as { responseCode?: number; response?: string; code?: string };
  if (e.responseCode) return (e.response ?? String(e.responseCode)).split(' ').slice(0, 2).join(' ');
  return e.code ?? String(err);
}

/** Message-IDs among `ids` the sink has not received after waiting up to `timeoutMs` for them. */
export async function undelivered(sink: SmtpSink, ids: Iterable<string>, timeoutMs: number): Promise<string[]> {
  const wanted = [...ids];
  const missing = () => {
    const delivered = new Set(sink.messages.map((m) => m.messageId));
    return wanted.filter((id) => !delivered.has(id));
  };
  await until(() => missing().length === 0, 'every acknowledged message at the sink', timeoutMs, 200).catch(() => {});
  return missing();
}
